/* Interned configurations: one immutable, reference-counted copy of each
 * distinct core_conf_t per process.
 *
 * A core_conf_t is ~10 KB (two configurations of RK_CONF_MAX_PEERS voters and
 * learners each), and a group keeps several (in effect, previous, snapshot
 * ones in the core; status and FSM ones in the node). In a multi-raft process
 * thousands of groups have the very same members, so they all share one copy
 * here. Configurations change rarely: a single table under a mutex is enough.
 *
 * Two configurations are the same when they hold the same peers in the same
 * order with the same attributes (endpoint, idx, priority), the same counts
 * and flags: sharing never changes what a reader of the copy sees. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/core.h"

typedef struct intern_entry {
    core_conf_t conf; /* first: a handed-out pointer is the entry's address */
    struct intern_entry *next;
    uint64_t hash;
    size_t refs;
} intern_entry_t;

static pthread_mutex_t intern_mu = PTHREAD_MUTEX_INITIALIZER;
static intern_entry_t **intern_buckets; /* n_buckets chains, grown with n_entries */
static size_t intern_n_buckets, intern_n_entries;

static uint64_t hash_bytes(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211u; /* FNV-1a */
    }
    return h;
}

static uint32_t list_len(uint32_t n)
{
    return n < RK_CONF_MAX_PEERS ? n : RK_CONF_MAX_PEERS;
}

static uint64_t hash_peers(uint64_t h, const rk_peer_id_t *v, uint32_t n)
{
    for (uint32_t i = 0; i < list_len(n); i++) {
        h = hash_bytes(h, v[i].endpoint.host, strnlen(v[i].endpoint.host, RK_HOST_MAX));
        h = hash_bytes(h, &v[i].endpoint.port, sizeof v[i].endpoint.port);
        h = hash_bytes(h, &v[i].idx, sizeof v[i].idx);
        h = hash_bytes(h, &v[i].priority, sizeof v[i].priority);
    }
    return h;
}

static uint64_t hash_cfg(uint64_t h, const rk_configuration_t *c)
{
    h = hash_bytes(h, &c->n_peers, sizeof c->n_peers);
    h = hash_bytes(h, &c->n_learners, sizeof c->n_learners);
    h = hash_peers(h, c->peers, c->n_peers);
    return hash_peers(h, c->learners, c->n_learners);
}

static uint64_t hash_conf(const core_conf_t *c)
{
    uint64_t h = 14695981039346656037u;
    h = hash_cfg(h, &c->cur);
    h = hash_cfg(h, &c->old);
    unsigned char flags = (unsigned char)(c->joint | c->manual_leave << 1);
    return hash_bytes(h, &flags, 1);
}

static bool peers_same(const rk_peer_id_t *a, const rk_peer_id_t *b, uint32_t n)
{
    for (uint32_t i = 0; i < list_len(n); i++)
        if (!core_peer_eq(&a[i], &b[i]) || a[i].priority != b[i].priority)
            return false;
    return true;
}

bool core_configuration_same(const rk_configuration_t *a, const rk_configuration_t *b)
{
    return a->n_peers == b->n_peers && a->n_learners == b->n_learners &&
           peers_same(a->peers, b->peers, a->n_peers) &&
           peers_same(a->learners, b->learners, a->n_learners);
}

bool core_conf_same(const core_conf_t *a, const core_conf_t *b)
{
    return a->joint == b->joint && a->manual_leave == b->manual_leave &&
           core_configuration_same(&a->cur, &b->cur) && core_configuration_same(&a->old, &b->old);
}

/* The used part of src, everything else zero. */
static void copy_cfg(rk_configuration_t *dst, const rk_configuration_t *src)
{
    dst->n_peers = src->n_peers;
    dst->n_learners = src->n_learners;
    memcpy(dst->peers, src->peers, list_len(src->n_peers) * sizeof *src->peers);
    memcpy(dst->learners, src->learners, list_len(src->n_learners) * sizeof *src->learners);
}

/* Doubles the bucket array; false when out of memory (the table still works,
 * with longer chains). Under intern_mu. */
static bool grow_buckets(void)
{
    size_t n = intern_n_buckets ? intern_n_buckets * 2 : 16;
    intern_entry_t **b = calloc(n, sizeof *b);
    if (b == NULL)
        return false;
    for (size_t i = 0; i < intern_n_buckets; i++) {
        for (intern_entry_t *e = intern_buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(intern_buckets);
    intern_buckets = b;
    intern_n_buckets = n;
    return true;
}

const core_conf_t *core_conf_intern(const core_conf_t *c)
{
    uint64_t h = hash_conf(c);
    const core_conf_t *out = NULL;
    pthread_mutex_lock(&intern_mu);
    if (intern_n_entries >= intern_n_buckets && !grow_buckets() && intern_n_buckets == 0)
        goto done;
    intern_entry_t **head = &intern_buckets[h & (intern_n_buckets - 1)];
    for (intern_entry_t *e = *head; e != NULL; e = e->next) {
        if (e->hash == h && core_conf_same(&e->conf, c)) {
            e->refs++;
            out = &e->conf;
            goto done;
        }
    }
    intern_entry_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        goto done;
    copy_cfg(&e->conf.cur, &c->cur);
    copy_cfg(&e->conf.old, &c->old);
    e->conf.joint = c->joint;
    e->conf.manual_leave = c->manual_leave;
    e->hash = h;
    e->refs = 1;
    e->next = *head;
    *head = e;
    intern_n_entries++;
    out = &e->conf;
done:
    pthread_mutex_unlock(&intern_mu);
    return out;
}

const core_conf_t *core_conf_ref(const core_conf_t *c)
{
    pthread_mutex_lock(&intern_mu);
    ((intern_entry_t *)c)->refs++;
    pthread_mutex_unlock(&intern_mu);
    return c;
}

void core_conf_release(const core_conf_t *c)
{
    if (c == NULL)
        return;
    intern_entry_t *e = (intern_entry_t *)c;
    pthread_mutex_lock(&intern_mu);
    if (--e->refs > 0) {
        pthread_mutex_unlock(&intern_mu);
        return;
    }
    intern_entry_t **pp = &intern_buckets[e->hash & (intern_n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    if (--intern_n_entries == 0) {
        /* Nothing left: give the buckets back too, so a process (or a test)
         * that stopped all its groups holds nothing here. */
        free(intern_buckets);
        intern_buckets = NULL;
        intern_n_buckets = 0;
    }
    pthread_mutex_unlock(&intern_mu);
    free(e);
}

size_t core_conf_interned(void)
{
    pthread_mutex_lock(&intern_mu);
    size_t n = intern_n_entries;
    pthread_mutex_unlock(&intern_mu);
    return n;
}
