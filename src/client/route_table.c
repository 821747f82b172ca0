/* The route table of client.h: per group, the configuration to ask and the
 * leader last seen, behind one mutex so that client threads can share it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/client.h"

#define RT_GROUP_MAX 128

typedef struct rt_group {
    struct rt_group *next;
    char name[RT_GROUP_MAX];
    rk_configuration_t conf;
    rk_peer_id_t leader; /* empty: unknown */
} rt_group_t;

struct rk_route_table {
    pthread_mutex_t mu;
    rt_group_t *groups;
};

rk_route_table_t *rk_route_table_new(void)
{
    rk_route_table_t *rt = calloc(1, sizeof *rt);
    if (rt != NULL)
        pthread_mutex_init(&rt->mu, NULL);
    return rt;
}

void rk_route_table_free(rk_route_table_t *rt)
{
    if (rt == NULL)
        return;
    while (rt->groups != NULL) {
        rt_group_t *g = rt->groups;
        rt->groups = g->next;
        free(g);
    }
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

/* Caller holds mu. */
static rt_group_t *find(rk_route_table_t *rt, const char *group)
{
    for (rt_group_t *g = rt->groups; g != NULL; g = g->next)
        if (strcmp(g->name, group) == 0)
            return g;
    return NULL;
}

int rk_route_table_update_configuration(rk_route_table_t *rt, const char *group,
                                        const rk_configuration_t *conf)
{
    if (rt == NULL || group == NULL || conf == NULL || strlen(group) >= RT_GROUP_MAX)
        return RK_EINVAL;
    pthread_mutex_lock(&rt->mu);
    rt_group_t *g = find(rt, group);
    if (g == NULL) {
        g = calloc(1, sizeof *g);
        if (g == NULL) {
            pthread_mutex_unlock(&rt->mu);
            return RK_ENOMEM;
        }
        strcpy(g->name, group);
        g->next = rt->groups;
        rt->groups = g;
    }
    g->conf = *conf;
    /* A cached leader outside the new configuration is stale. */
    if (!rk_peer_id_is_empty(&g->leader) && !rk_configuration_contains(conf, &g->leader))
        rk_peer_id_clear(&g->leader);
    pthread_mutex_unlock(&rt->mu);
    return 0;
}

int rk_route_table_get_configuration(rk_route_table_t *rt, const char *group,
                                     rk_configuration_t *out)
{
    pthread_mutex_lock(&rt->mu);
    rt_group_t *g = find(rt, group);
    if (g != NULL)
        *out = g->conf;
    pthread_mutex_unlock(&rt->mu);
    return g != NULL ? 0 : RK_ENOTFOUND;
}

int rk_route_table_update_leader(rk_route_table_t *rt, const char *group,
                                 const rk_peer_id_t *leader)
{
    pthread_mutex_lock(&rt->mu);
    rt_group_t *g = find(rt, group);
    if (g != NULL) {
        if (leader == NULL)
            rk_peer_id_clear(&g->leader);
        else
            g->leader = *leader;
    }
    pthread_mutex_unlock(&rt->mu);
    return g != NULL ? 0 : RK_ENOTFOUND;
}

int rk_route_table_select_leader(rk_route_table_t *rt, const char *group, rk_peer_id_t *leader)
{
    int rc = 0;
    pthread_mutex_lock(&rt->mu);
    rt_group_t *g = find(rt, group);
    if (g == NULL)
        rc = RK_ENOTFOUND;
    else if (rk_peer_id_is_empty(&g->leader))
        rc = RK_ENOLEADER;
    else
        *leader = g->leader;
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

int rk_route_table_refresh_leader(rk_route_table_t *rt, rk_cli_client_t *c, const char *group,
                                  rk_status_t *st)
{
    rk_configuration_t conf;
    if (rk_route_table_get_configuration(rt, group, &conf) != 0)
        return rk_status_set(st, RK_ENOTFOUND, "group '%s' is not in the route table", group);
    rk_peer_id_t leader;
    int rc = rk_cli_get_leader(c, group, &conf, &leader, st);
    rk_route_table_update_leader(rt, group, rc == 0 ? &leader : NULL);
    return rc;
}

int rk_route_table_refresh_configuration(rk_route_table_t *rt, rk_cli_client_t *c,
                                         const char *group, rk_status_t *st)
{
    rk_configuration_t conf, fresh;
    if (rk_route_table_get_configuration(rt, group, &conf) != 0)
        return rk_status_set(st, RK_ENOTFOUND, "group '%s' is not in the route table", group);
    int rc = rk_cli_get_peers(c, group, &conf, false, &fresh, st);
    if (rc == 0)
        rc = rk_route_table_update_configuration(rt, group, &fresh);
    return rc;
}

bool rk_route_table_handle_redirect(rk_route_table_t *rt, const char *group, const rk_status_t *st)
{
    rk_peer_id_t leader;
    if (rk_cli_redirect_leader(st, &leader)) {
        rk_route_table_update_leader(rt, group, &leader);
        return true;
    }
    if (st != NULL && st->code == RK_ENOTLEADER)
        rk_route_table_update_leader(rt, group, NULL);
    return false;
}
