/* Helpers shared by the RPC test suites: a generic protobuf-c message filler
 * (every field gets a distinct non-default value, so a round trip that drops
 * or mixes up a field is caught), packed-bytes comparison, and a loop runner
 * with a safety deadline. Header-only: included by test_rpc_*.c. */
#ifndef RPC_TEST_UTIL_H
#define RPC_TEST_UTIL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Everything the filler allocates, freed by arena_free. */
typedef struct arena {
    void *p[4096];
    unsigned n;
} arena_t;

static __attribute__((unused)) void *arena_alloc(arena_t *a, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL || a->n == sizeof a->p / sizeof a->p[0])
        abort();
    a->p[a->n++] = p;
    return p;
}

static __attribute__((unused)) void arena_free(arena_t *a)
{
    for (unsigned i = 0; i < a->n; i++)
        free(a->p[i]);
    a->n = 0;
}

static __attribute__((unused)) void fill_value(arena_t *a, const ProtobufCFieldDescriptor *f,
                                               void *dst, unsigned seed, int depth);

/* Fills every field of a message of descriptor d (allocated in a). Repeated
 * fields get two elements, nested messages are filled to depth 3. */
static __attribute__((unused)) ProtobufCMessage *
fill_message(arena_t *a, const ProtobufCMessageDescriptor *d, unsigned seed, int depth)
{
    ProtobufCMessage *m = arena_alloc(a, d->sizeof_message);

    d->message_init(m);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *base = (char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t esz = f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING
                             ? sizeof(void *)
                         : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
                         : f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_INT64 ? 8
                         : f->type == PROTOBUF_C_TYPE_BOOL ? sizeof(protobuf_c_boolean)
                                                           : 4;
            if (depth >= 3 && f->type == PROTOBUF_C_TYPE_MESSAGE)
                continue;
            char *arr = arena_alloc(a, 2 * esz);
            for (unsigned k = 0; k < 2; k++)
                fill_value(a, f, arr + k * esz, seed * 31 + i * 7 + k, depth);
            *(size_t *)(base + f->quantifier_offset) = 2;
            *(void **)(base + f->offset) = arr;
        } else {
            if (depth >= 3 && f->type == PROTOBUF_C_TYPE_MESSAGE)
                continue;
            fill_value(a, f, base + f->offset, seed * 31 + i * 7, depth);
            if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
                *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        }
    }
    return m;
}

static __attribute__((unused)) void fill_value(arena_t *a, const ProtobufCFieldDescriptor *f,
                                               void *dst, unsigned seed, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT64:
        *(uint64_t *)dst = 1000003ull * (seed + 1) + ((uint64_t)seed << 40);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT32:
        *(uint32_t *)dst = 17u * (seed + 1);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)dst = 1;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        *(int *)dst = e->values[1 + seed % (e->n_values - 1)].value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *s = arena_alloc(a, 48);
        snprintf(s, 48, "%s-127.0.0.1:%u:%u", f->name, 8000 + seed % 1000, seed % 7);
        *(char **)dst = s;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = dst;
        b->len = 3 + seed % 29;
        b->data = arena_alloc(a, b->len);
        for (size_t k = 0; k < b->len; k++)
            b->data[k] = (uint8_t)(seed + k * 13);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)dst = fill_message(a, f->descriptor, seed + 1, depth + 1);
        break;
    default:
        abort(); /* a type the protos do not use yet: extend the filler */
    }
}

/* Packs a message into a malloc'ed buffer. */
static __attribute__((unused)) uint8_t *pack_alloc(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, b);
    return b;
}

/* Two messages are equal when they pack to the same bytes (the filler sets
 * every field, so a dropped field changes the bytes). */
static __attribute__((unused)) bool msg_equal(const ProtobufCMessage *x, const ProtobufCMessage *y)
{
    size_t lx, ly;
    uint8_t *bx = pack_alloc(x, &lx), *by = pack_alloc(y, &ly);
    bool eq = lx == ly && memcmp(bx, by, lx) == 0;
    free(bx);
    free(by);
    return eq;
}

/* Runs loop until *flag is true or ms elapse. Returns *flag. */
static __attribute__((unused)) void run_until_deadline_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static __attribute__((unused)) bool run_until(uv_loop_t *loop, const bool *flag, uint64_t ms)
{
    uv_timer_t t;
    bool expired = false;

    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, run_until_deadline_cb, ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

/* Runs loop until cond holds; fails the test if it does not within ms (a
 * hang guard, not a timing assertion). Needs cmocka. */
#define RUN_UNTIL(loop, cond, ms)                                  \
    do {                                                           \
        uv_timer_t t_;                                             \
        bool exp_ = false;                                         \
        uv_timer_init((loop), &t_);                                \
        t_.data = &exp_;                                           \
        uv_timer_start(&t_, run_until_deadline_cb, (ms), 0);       \
        while (!(cond) && !exp_)                                   \
            uv_run((loop), UV_RUN_ONCE);                           \
        uv_close((uv_handle_t *)&t_, NULL);                        \
        uv_run((loop), UV_RUN_NOWAIT);                             \
        if (!(cond))                                               \
            fail_msg("no %s within %u ms", #cond, (unsigned)(ms)); \
    } while (0)

/* Runs the loop for ms (for "nothing else happens" checks). */
static __attribute__((unused)) void run_for(uv_loop_t *loop, uint64_t ms)
{
    bool never = false;
    run_until(loop, &never, ms);
}

static __attribute__((unused)) void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Runs until the loop has no active handles (everything closed). If that
 * does not happen within 10 s (a test failed half-way and left a client
 * reconnecting), force-closes what is left so the suite reports the failure
 * instead of hanging; returns false then. */
static __attribute__((unused)) bool drain_loop(uv_loop_t *loop)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, run_until_deadline_cb, 10000, 0);
    uv_unref((uv_handle_t *)&guard); /* the guard alone keeps nothing alive */
    while (uv_run(loop, UV_RUN_ONCE) != 0 && !expired)
        ;
    if (expired)
        uv_walk(loop, close_any, NULL);
    else
        uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return !expired;
}

#endif /* RPC_TEST_UTIL_H */
