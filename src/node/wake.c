/* Wake-ups and the command queue: how work reaches the nodes of a loop.
 * One set of handles per runtime, whatever the number of groups on it:
 * node_wake puts the node on the runtime's ready list (at most once), and
 * the runtime's check handle drives every ready node once per loop
 * iteration, in the check phase -- after every callback of the poll phase,
 * so a burst of messages still makes one drive per node. Other threads
 * queue on a mutex-guarded list and send one uv_async; the loop thread
 * queues directly and starts an idle handle, which only keeps the poll from
 * blocking meanwhile (cheaper than uv_async_send to ourselves: no eventfd
 * write, read and extra epoll round). A runtime with 10,000 groups thus has
 * three handles here, not 30,000 that libuv would walk on every wake-up.
 */
#include "rpc/rpc_client.h"
#include "src/node/node_internal.h"

static void kick_idle_cb(uv_idle_t *h)
{
    (void)h; /* only there so that the poll phase does not block */
}

void node_rt_kick(node_rt_t *rt)
{
    uv_idle_start(&rt->kick_idle, kick_idle_cb); /* no-op when started */
}

static void ready_push(node_rt_t *rt, rk_node_t *n)
{
    if (n->ready_queued)
        return;
    n->ready_queued = true;
    n->ready_next = NULL;
    if (rt->ready_tail)
        rt->ready_tail->ready_next = n;
    else
        rt->ready = n;
    rt->ready_tail = n;
    node_rt_kick(rt);
}

/* Any thread but the loop's, with n->mu held and n->handles_open. */
static void woken_push(node_rt_t *rt, rk_node_t *n)
{
    pthread_mutex_lock(&rt->wake_mu);
    bool send = rt->wake_open && rt->woken == NULL;
    if (!n->woken_queued) {
        n->woken_queued = true;
        n->woken_next = rt->woken;
        rt->woken = n;
    }
    pthread_mutex_unlock(&rt->wake_mu);
    if (send) /* a non-empty list has its uv_async_send pending already */
        uv_async_send(&rt->wake_async);
}

void node_wake_locked(rk_node_t *n)
{
    if (!n->handles_open)
        return;
    if (node_rt_on_loop(n->rt))
        ready_push(n->rt, n);
    else
        woken_push(n->rt, n);
}

void node_wake(rk_node_t *n)
{
    if (node_rt_on_loop(n->rt)) {
        /* handles_open changes only on the loop thread */
        if (n->handles_open)
            ready_push(n->rt, n);
        return;
    }
    pthread_mutex_lock(&n->mu);
    node_wake_locked(n);
    pthread_mutex_unlock(&n->mu);
}

int node_post_cmd(rk_node_t *n, node_cmd_t *c)
{
    c->next = NULL;
    pthread_mutex_lock(&n->mu);
    /* checked and queued under one lock: node_loop_stop sets
     * shutdown_requested under it before its last drain of n->cmds */
    if (n->shutdown_requested || !n->handles_open) {
        pthread_mutex_unlock(&n->mu);
        return RK_ESHUTDOWN;
    }
    if (n->cmds_tail)
        n->cmds_tail->next = c;
    else
        n->cmds = c;
    n->cmds_tail = c;
    node_wake_locked(n);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

/* Poll phase: the nodes other threads woke join the ready list, driven in
 * the check phase of this same iteration. */
static void on_wake_async(uv_async_t *a)
{
    node_rt_t *rt = a->data;
    pthread_mutex_lock(&rt->wake_mu);
    while (rt->woken) { /* under the lock: a node may be queued again at once */
        rk_node_t *n = rt->woken;
        rt->woken = n->woken_next;
        n->woken_queued = false;
        ready_push(rt, n);
    }
    pthread_mutex_unlock(&rt->wake_mu);
}

static void on_check(uv_check_t *h)
{
    node_rt_t *rt = h->data;
    uv_idle_stop(&rt->kick_idle);
    /* Nodes woken while these are driven (by themselves, by messages sent
     * here) join a fresh list and restart the idle handle: next iteration.
     * Nodes stop only in loop calls, never during a drive, so none of
     * these goes away under us. */
    rk_node_t *n = rt->ready;
    rt->ready = rt->ready_tail = NULL;
    while (n) {
        rk_node_t *next = n->ready_next;
        n->ready_queued = false;
        if (!n->stopping)
            node_drive(n);
        n = next;
    }
    /* The log writes held by every group driven in this iteration (and any
     * held since the last check) go out together: one journal write and one
     * fdatasync for all of them (rt_storage.c). The check phase comes after
     * every callback of the poll phase, so every group woken by this
     * iteration's messages has submitted its writes. */
    transport_flush_heartbeats(rt);
    /* The messages of these drives leave before the log flush may block
     * the loop on a disk sync: a leader's appends reach the followers while
     * its own write is synced (Raft thesis 10.2.1). */
    if (rt->client != NULL)
        rpc_client_flush(rt->client);
    if (rt->flush_pending)
        node_rt_storage_flush(rt);
}

void node_rt_wake_init(node_rt_t *rt)
{
    pthread_mutex_init(&rt->wake_mu, NULL);
    uv_async_init(&rt->loop, &rt->wake_async, on_wake_async);
    rt->wake_async.data = rt;
    uv_idle_init(&rt->loop, &rt->kick_idle);
    rt->kick_idle.data = rt;
    uv_check_init(&rt->loop, &rt->drive_check);
    rt->drive_check.data = rt;
    uv_check_start(&rt->drive_check, on_check);
    rt->wake_open = true;
}

void node_rt_wake_close(node_rt_t *rt)
{
    pthread_mutex_lock(&rt->wake_mu);
    rt->wake_open = false;
    pthread_mutex_unlock(&rt->wake_mu);
    uv_close((uv_handle_t *)&rt->wake_async, NULL);
    uv_close((uv_handle_t *)&rt->kick_idle, NULL);
    uv_close((uv_handle_t *)&rt->drive_check, NULL);
}

void node_wake_open(rk_node_t *n)
{
    pthread_mutex_lock(&n->mu);
    n->handles_open = true;
    pthread_mutex_unlock(&n->mu);
}

void node_wake_close(rk_node_t *n)
{
    node_rt_t *rt = n->rt;
    /* From here on no thread queues n (checked under n->mu). */
    pthread_mutex_lock(&n->mu);
    n->handles_open = false;
    pthread_mutex_unlock(&n->mu);
    pthread_mutex_lock(&rt->wake_mu);
    for (rk_node_t **pp = &rt->woken; *pp; pp = &(*pp)->woken_next) {
        if (*pp == n) {
            *pp = n->woken_next;
            break;
        }
    }
    n->woken_queued = false;
    pthread_mutex_unlock(&rt->wake_mu);
    if (!n->ready_queued)
        return;
    rk_node_t *prev = NULL;
    for (rk_node_t *m = rt->ready; m; prev = m, m = m->ready_next) {
        if (m != n)
            continue;
        if (prev)
            prev->ready_next = n->ready_next;
        else
            rt->ready = n->ready_next;
        if (rt->ready_tail == n)
            rt->ready_tail = prev;
        break;
    }
    n->ready_queued = false;
}
