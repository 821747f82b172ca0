# tests/shard: the sharded kv store end to end (kv-server --shards, kv-client
# --shards) under kill -9 and SIGSTOP; sharded_kv_test.py --shards S sets the
# shard count (default 16).
TEST_CMDS += tests/shard/sharded_kv_test.py
