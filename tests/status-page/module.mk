# tests/status-page: the admin endpoint's status page in headless Chromium,
# against a 3-node kv cluster (tests/status-page/status_page_test.py).
TEST_CMDS += tests/status-page/status_page_test.py
