/* Delivery of state-change events to listeners on a thread of their own, so
 * that an application starting or stopping leader-only services in a
 * listener never delays the raft loop or the state machine.
 *
 * One mutex guards the queue and the listener list. An event is queued with
 * the set of listeners registered at that moment (a listener added later
 * must not see older events: it starts from RK_EVENT_CURRENT). The thread
 * pops one queue item, calls each of its listeners with the lock released,
 * and remembers which listener it is calling so that removal can wait for
 * that call to end (unless removal comes from the listener thread itself).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/events.h"
#include "src/metrics/packed_status.h"

#define MAX_LISTENERS 64

typedef struct item {
    struct item *next;
    rk_node_event_t ev;
    size_t n_targets;
    rk_node_listener_t *targets[MAX_LISTENERS];
} item_t;

struct metrics_events {
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* the thread: something queued or stop */
    pthread_cond_t progress; /* waiters: a delivery ended */
    pthread_t thread;
    bool stop;
    item_t *head, *tail;
    uint64_t posted, delivered; /* items, for flush */
    rk_node_listener_t *listeners[MAX_LISTENERS];
    size_t n_listeners;
    rk_node_listener_t *calling; /* listener being called now, or NULL */
    rk_node_event_t current;
};

static bool is_registered(const metrics_events_t *e, const rk_node_listener_t *l)
{
    for (size_t i = 0; i < e->n_listeners; i++)
        if (e->listeners[i] == l)
            return true;
    return false;
}

static void enqueue(metrics_events_t *e, item_t *it)
{
    it->next = NULL;
    if (e->tail)
        e->tail->next = it;
    else
        e->head = it;
    e->tail = it;
    e->posted++;
    pthread_cond_signal(&e->wake);
}

static void *events_main(void *arg)
{
    metrics_events_t *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (e->head == NULL && !e->stop)
            pthread_cond_wait(&e->wake, &e->lock);
        if (e->head == NULL)
            break; /* stop, and everything queued was delivered */
        item_t *it = e->head;
        e->head = it->next;
        if (e->head == NULL)
            e->tail = NULL;
        for (size_t i = 0; i < it->n_targets; i++) {
            rk_node_listener_t *l = it->targets[i];
            if (!is_registered(e, l))
                continue; /* removed after the event was queued */
            e->calling = l;
            pthread_mutex_unlock(&e->lock);
            l->on_event(l, &it->ev);
            pthread_mutex_lock(&e->lock);
            e->calling = NULL;
            pthread_cond_broadcast(&e->progress);
        }
        free(it);
        e->delivered++;
        pthread_cond_broadcast(&e->progress);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static void fill_event(rk_node_event_t *ev, const metrics_event_lite_t *lite,
                       const rk_node_status_t *st);

metrics_events_t *metrics_events_new(const rk_node_status_t *st)
{
    metrics_events_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->progress, NULL);
    metrics_event_lite_t cur = {
        .type = RK_EVENT_CURRENT, .state = st->state, .prev_state = st->state};
    rk_peer_id_clear(&cur.peer);
    fill_event(&e->current, &cur, st);
    if (pthread_create(&e->thread, NULL, events_main, e) != 0) {
        pthread_cond_destroy(&e->progress);
        pthread_cond_destroy(&e->wake);
        pthread_mutex_destroy(&e->lock);
        free(e);
        return NULL;
    }
    return e;
}

void metrics_events_free(metrics_events_t *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    e->stop = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    pthread_cond_destroy(&e->progress);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

static void fill_event(rk_node_event_t *ev, const metrics_event_lite_t *lite,
                       const rk_node_status_t *st)
{
    ev->type = lite->type;
    ev->state = lite->state;
    ev->prev_state = lite->prev_state;
    ev->term = st->term;
    ev->leader = st->leader;
    ev->peer = lite->peer;
    /* The entries in use only: a published status leaves the rest as they
     * were (packed_status_reset). */
    rk_configuration_init(&ev->conf);
    packed_status_conf_copy(&ev->conf, &st->conf);
}

int metrics_events_post(metrics_events_t *e, const metrics_event_lite_t *evs, size_t n,
                        const rk_node_status_t *st)
{
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < n && e->n_listeners > 0; i++) {
        item_t *it = malloc(sizeof *it);
        if (it == NULL) {
            rc = RK_ENOMEM;
            break;
        }
        fill_event(&it->ev, &evs[i], st);
        it->n_targets = e->n_listeners;
        memcpy(it->targets, e->listeners, e->n_listeners * sizeof e->listeners[0]);
        enqueue(e, it);
    }
    metrics_event_lite_t cur = {
        .type = RK_EVENT_CURRENT, .state = st->state, .prev_state = st->state};
    rk_peer_id_clear(&cur.peer);
    fill_event(&e->current, &cur, st);
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int metrics_events_add(metrics_events_t *e, rk_node_listener_t *l)
{
    if (l == NULL || l->on_event == NULL)
        return RK_EINVAL;
    item_t *it = malloc(sizeof *it);
    if (it == NULL)
        return RK_ENOMEM;
    pthread_mutex_lock(&e->lock);
    if (is_registered(e, l) || e->n_listeners == MAX_LISTENERS) {
        int rc = is_registered(e, l) ? RK_EEXIST : RK_ETOOBIG;
        pthread_mutex_unlock(&e->lock);
        free(it);
        return rc;
    }
    e->listeners[e->n_listeners++] = l;
    /* Under the same lock as posting: the CURRENT event sits in the queue
     * exactly between the events before registration and those after. */
    it->ev = e->current;
    it->n_targets = 1;
    it->targets[0] = l;
    enqueue(e, it);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

int metrics_events_remove(metrics_events_t *e, rk_node_listener_t *l)
{
    pthread_mutex_lock(&e->lock);
    size_t i = 0;
    while (i < e->n_listeners && e->listeners[i] != l)
        i++;
    if (i == e->n_listeners) {
        pthread_mutex_unlock(&e->lock);
        return RK_ENOTFOUND;
    }
    memmove(&e->listeners[i], &e->listeners[i + 1],
            (e->n_listeners - i - 1) * sizeof e->listeners[0]);
    e->n_listeners--;
    /* The listener thread itself (a listener removing itself or another)
     * must not wait for its own call to end. */
    if (!pthread_equal(pthread_self(), e->thread)) {
        while (e->calling == l)
            pthread_cond_wait(&e->progress, &e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return 0;
}

void metrics_events_flush_queue(metrics_events_t *e)
{
    pthread_mutex_lock(&e->lock);
    uint64_t target = e->posted;
    while (e->delivered < target)
        pthread_cond_wait(&e->progress, &e->lock);
    pthread_mutex_unlock(&e->lock);
}
