/* The RPC wire format without sockets: frame header encoding and the stream
 * splitter's checks, a round trip of every message type, the method registry,
 * routing fields and endpoint parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "rpc/raft.pb-c.h"
#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_conn.h"
#include "rpc/rpc_frame.h"
#include "rpc/rpc_method.h"
#include "rpc/rpc_raft.h"
#include "tests/unit/rpc_test_util.h"

static void header_round_trip_keeps_every_field(void **state)
{
    rpc_frame_hdr_t h = {
        RPC_WIRE_VERSION, RPC_F_RESPONSE | RPC_F_ERROR, 0x01020304u, 0x1122334455667788ull, 7, 5};
    uint8_t buf[RPC_FRAME_HDR_LEN + 12] = {0};
    rpc_frame_hdr_t out;

    (void)state;
    rpc_frame_hdr_encode(&h, buf);
    assert_int_equal(buf[0], 0x52);
    assert_int_equal(buf[1], 0x4B);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, 1024, &out, NULL), (long)sizeof buf);
    assert_int_equal(out.flags, h.flags);
    assert_int_equal(out.method, h.method);
    assert_true(out.corr_id == h.corr_id);
    assert_int_equal(out.body_len, 7);
    assert_int_equal(out.attach_len, 5);
}

static void splitter_waits_for_every_byte_of_a_frame(void **state)
{
    rpc_frame_hdr_t h = {RPC_WIRE_VERSION, 0, RPC_M_HEARTBEAT, 9, 10, 6};
    uint8_t buf[RPC_FRAME_HDR_LEN + 16 + 3];
    rpc_frame_hdr_t out;

    (void)state;
    rpc_frame_hdr_encode(&h, buf);
    for (size_t n = 0; n < RPC_FRAME_HDR_LEN + 16; n++)
        assert_int_equal(rpc_frame_next(buf, n, 1024, &out, NULL), 0);
    /* Bytes of the next frame after it do not matter. */
    assert_int_equal(rpc_frame_next(buf, sizeof buf, 1024, &out, NULL), RPC_FRAME_HDR_LEN + 16);
}

static void splitter_refuses_bad_headers(void **state)
{
    rpc_frame_hdr_t h = {RPC_WIRE_VERSION, 0, RPC_M_HEARTBEAT, 0, 0, 0};
    uint8_t buf[RPC_FRAME_HDR_LEN];
    rpc_frame_hdr_t out;
    rk_status_t why;

    (void)state;
    /* Garbage is refused from its first two bytes, not after 24. */
    assert_int_equal(rpc_frame_next((const uint8_t *)"GE", 2, 1024, &out, &why), RK_EPROTO);
    assert_non_null(strstr(why.msg, "magic"));

    rpc_frame_hdr_encode(&h, buf);
    buf[2] = 9;
    assert_int_equal(rpc_frame_next(buf, 3, 1024, &out, &why), RK_EPROTO);

    h.flags = 0x80;
    rpc_frame_hdr_encode(&h, buf);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, 1024, &out, &why), RK_EPROTO);

    h.flags = RPC_F_RESPONSE | RPC_F_ONEWAY;
    rpc_frame_hdr_encode(&h, buf);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, 1024, &out, &why), RK_EPROTO);

    h.flags = RPC_F_ERROR;
    rpc_frame_hdr_encode(&h, buf);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, 1024, &out, &why), RK_EPROTO);

    /* The limit counts header, body and attachment; 2^32-1 lengths do not
     * wrap around. */
    h.flags = 0;
    h.body_len = 1000;
    h.attach_len = 1;
    rpc_frame_hdr_encode(&h, buf);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, 1024, &out, &why), RK_ETOOBIG);
    h.body_len = UINT32_MAX;
    h.attach_len = UINT32_MAX;
    rpc_frame_hdr_encode(&h, buf);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, SIZE_MAX, &out, &why), 0);
    assert_int_equal(rpc_frame_next(buf, sizeof buf, RPC_DEFAULT_MAX_FRAME, &out, &why),
                     RK_ETOOBIG);
}

/* Packs msg into a frame, splits and decodes it again; asserts equality. */
static void frame_round_trip(const ProtobufCMessage *msg)
{
    rpc_frame_hdr_t h = {0, 0, RPC_M_APPEND_ENTRIES, 42, 0, 0}, out;
    size_t len;
    uint8_t *buf = rpc_frame_pack(&h, msg, NULL, 0, &len);
    ProtobufCMessage *back;

    assert_non_null(buf);
    assert_int_equal(rpc_frame_next(buf, len, RPC_DEFAULT_MAX_FRAME, &out, NULL), (long)len);
    back = rpc_frame_unpack(msg->descriptor, buf + RPC_FRAME_HDR_LEN, out.body_len);
    assert_non_null(back);
    assert_true(msg_equal(msg, back));
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
}

static void every_message_type_survives_a_frame_round_trip(void **state)
{
    unsigned n;
    const rpc_method_info_t *all = rpc_method_all(&n);
    arena_t a = {.n = 0};
    unsigned checked = 0;

    (void)state;
    for (unsigned i = 0; i < n; i++) {
        frame_round_trip(fill_message(&a, all[i].req, i, 0));
        checked++;
        if (all[i].resp != NULL) {
            frame_round_trip(fill_message(&a, all[i].resp, i + 100, 0));
            checked++;
        }
        arena_free(&a);
    }
    frame_round_trip(fill_message(&a, &rk__error_response__descriptor, 1, 0));
    arena_free(&a);
    assert_true(checked >= 30);
}

static void append_entries_fields_survive_by_name(void **state)
{
    Rk__AppendEntriesRequest req = RK__APPEND_ENTRIES_REQUEST__INIT;
    Rk__Entry e[2] = {RK__ENTRY__INIT, RK__ENTRY__INIT};
    Rk__Entry *ep[2] = {&e[0], &e[1]};
    size_t len;
    uint8_t *buf;
    Rk__AppendEntriesRequest *back;

    (void)state;
    req.group_id = "counter";
    req.server_id = "127.0.0.1:8081:0";
    req.peer_id = "127.0.0.1:8082:0";
    req.term = 7;
    req.prev_log_index = 100;
    req.prev_log_term = 6;
    req.committed_index = 99;
    e[0].term = 7;
    e[0].type = RK__ENTRY_TYPE__ENTRY_DATA;
    e[0].data.data = (uint8_t *)"abc";
    e[0].data.len = 3;
    e[1].term = 7;
    e[1].type = RK__ENTRY_TYPE__ENTRY_CONF;
    e[1].in_attachment = 1;
    e[1].data_len = 4096;
    req.n_entries = 2;
    req.entries = ep;
    buf = pack_alloc(&req.base, &len);
    back = rk__append_entries_request__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_string_equal(back->group_id, "counter");
    assert_string_equal(back->peer_id, "127.0.0.1:8082:0");
    assert_int_equal(back->prev_log_index, 100);
    assert_int_equal(back->n_entries, 2);
    assert_int_equal(back->entries[0]->data.len, 3);
    assert_memory_equal(back->entries[0]->data.data, "abc", 3);
    assert_int_equal(back->entries[1]->type, RK__ENTRY_TYPE__ENTRY_CONF);
    assert_true(back->entries[1]->in_attachment);
    assert_int_equal(back->entries[1]->data_len, 4096);
    rk__append_entries_request__free_unpacked(back, NULL);
    free(buf);
}

static void registry_ids_are_unique_and_routed_methods_have_routing_fields(void **state)
{
    unsigned n;
    const rpc_method_info_t *all = rpc_method_all(&n);
    arena_t a = {.n = 0};
    char name[32];

    (void)state;
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = i + 1; j < n; j++)
            assert_true(all[i].id != all[j].id);
        assert_ptr_equal(rpc_method_info(all[i].id), &all[i]);
        assert_false(rpc_method_is_app(all[i].id));
        if (all[i].flags & RPC_MF_ROUTED) {
            const char *g = NULL, *p = NULL;
            ProtobufCMessage *m = fill_message(&a, all[i].req, i, 0);
            rpc_msg_route_fields(m, &g, &p);
            assert_non_null(g);
            assert_non_null(p);
            assert_non_null(strstr(g, "group_id-"));
            assert_non_null(strstr(p, "peer_id-"));
            arena_free(&a);
        }
    }
    assert_null(rpc_method_info(RPC_M_APP_FIRST));
    assert_string_equal(rpc_method_name(RPC_M_APPEND_ENTRIES, name, sizeof name), "append_entries");
    assert_string_equal(rpc_method_name(RPC_M_APP_FIRST + 1, name, sizeof name), "app#1025");
    assert_string_equal(rpc_method_name(500, name, sizeof name), "unknown#500");
}

static void endpoints_parse_ip_literals_only(void **state)
{
    struct sockaddr_storage ss;
    rk_status_t err;

    (void)state;
    assert_int_equal(rpc_endpoint_addr("127.0.0.1:8081", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8081);
    assert_int_equal(rpc_endpoint_addr("[::1]:9", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(rpc_endpoint_addr("localhost:1", &ss, &err), 0);
    assert_int_equal(rpc_endpoint_addr("127.0.0.1", &ss, &err), RK_EINVAL);
    assert_int_equal(rpc_endpoint_addr("127.0.0.1:0", &ss, &err), RK_EINVAL);
    assert_int_equal(rpc_endpoint_addr("127.0.0.1:70000", &ss, &err), RK_EINVAL);
    assert_int_equal(rpc_endpoint_addr("127.0.0.1:80x", &ss, &err), RK_EINVAL);
    assert_int_equal(rpc_endpoint_addr("example.org:80", &ss, &err), RK_EINVAL);
    assert_int_equal(rpc_endpoint_addr(":80", &ss, &err), RK_EINVAL);
    assert_int_equal(rpc_endpoint_addr("[::1:80", &ss, &err), RK_EINVAL);
}

static void attachment_entries_resolve_to_exact_slices(void **state)
{
    Rk__AppendEntriesRequest req = RK__APPEND_ENTRIES_REQUEST__INIT;
    Rk__Entry e[3] = {RK__ENTRY__INIT, RK__ENTRY__INIT, RK__ENTRY__INIT};
    Rk__Entry *ep[3] = {&e[0], &e[1], &e[2]};
    const void *payloads[2] = {"hello", "raft!!"};
    size_t lens[2] = {5, 6};
    uv_buf_t bufs[2];
    rpc_entry_view_t v[3];
    const uint8_t att[] = "helloraft!!";

    (void)state;
    req.entries = ep;
    req.n_entries = 3;
    e[0].term = 1;
    e[0].data.data = (uint8_t *)"in";
    e[0].data.len = 2;
    e[1].data.data = (uint8_t *)"dropped";
    e[1].data.len = 7;
    e[2].term = 2;
    e[2].type = RK__ENTRY_TYPE__ENTRY_CONF;
    rpc_entries_to_attachment(&ep[1], 2, payloads, lens, bufs);
    assert_int_equal(e[1].data.len, 0);
    assert_ptr_equal(bufs[0].base, payloads[0]); /* the payload itself, not a copy */
    assert_int_equal(rpc_entries_resolve(&req, att, 11, v), 0);
    assert_int_equal(v[0].len, 2);
    assert_memory_equal(v[0].data, "in", 2);
    assert_ptr_equal(v[1].data, att);
    assert_int_equal(v[1].len, 5);
    assert_ptr_equal(v[2].data, att + 5);
    assert_int_equal(v[2].len, 6);
    assert_int_equal(v[2].type, RK__ENTRY_TYPE__ENTRY_CONF);
    /* Lengths that overrun or underuse the attachment are protocol errors. */
    assert_int_equal(rpc_entries_resolve(&req, att, 10, v), RK_EPROTO);
    assert_int_equal(rpc_entries_resolve(&req, att, 12, v), RK_EPROTO);
    e[2].data_len = UINT32_MAX;
    assert_int_equal(rpc_entries_resolve(&req, att, 11, v), RK_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip_keeps_every_field),
        cmocka_unit_test(splitter_waits_for_every_byte_of_a_frame),
        cmocka_unit_test(splitter_refuses_bad_headers),
        cmocka_unit_test(every_message_type_survives_a_frame_round_trip),
        cmocka_unit_test(append_entries_fields_survive_by_name),
        cmocka_unit_test(registry_ids_are_unique_and_routed_methods_have_routing_fields),
        cmocka_unit_test(endpoints_parse_ip_literals_only),
        cmocka_unit_test(attachment_entries_resolve_to_exact_slices),
    };
    return cmocka_run_group_tests_name("rpc_codec", tests, NULL, NULL);
}
