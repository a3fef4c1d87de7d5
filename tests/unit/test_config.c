/*
 * test_config: the node config loader, its error texts, the emitter and the
 * reference documentation in config/.
 */
#include "testutil.h"

#include "config/config.h"
#include "util/fs.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

/* The two required keys; most tests append one section to it. */
#define MINIMAL "node:\n  name: alpha\ntrust:\n  ca: ca.crt\n"

static cohort_config_t *s_parse(const char *yaml)
{
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    int rc = cohort_config_parse("node.yaml", "/etc/cohort", yaml, strlen(yaml), &cfg, &err);
    if (rc != 0)
        fail_msg("unexpected error: %s", cohort_err_text(&err));
    assert_non_null(cfg);
    return cfg;
}

static void s_expect_error_len(const char *yaml, size_t len, const char *expected)
{
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    assert_int_equal(cohort_config_parse("node.yaml", "/etc/cohort", yaml, len, &cfg, &err), -1);
    assert_null(cfg);
    assert_string_equal(cohort_err_text(&err), expected);
}

static void s_expect_error(const char *yaml, const char *expected)
{
    s_expect_error_len(yaml, strlen(yaml), expected);
}

static char *s_emit(const cohort_config_t *cfg)
{
    char *out = NULL;
    size_t len = 0;
    cohort_err_t err;
    cohort_err_clear(&err);
    if (cohort_config_emit(cfg, &out, &len, &err) != 0)
        fail_msg("emit failed: %s", cohort_err_text(&err));
    assert_int_equal(strlen(out), len);
    return out;
}

/* noinline: gcc 12 -O3 otherwise reports pointers into the result as
 * dangling (it confuses the local holding the pointer with its target). */
__attribute__((noinline)) static char *s_read_file(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    cohort_err_t err;
    if (cohort_fs_read(path, 1 << 20, &buf, &len, &err) != 0)
        fail_msg("%s", cohort_err_text(&err));
    return buf;
}

/* ---- the reference documentation ---- */

static void test_reference_config_loads_and_sets_every_key(void **state)
{
    (void)state;
    char *path = test_src_path("config/node.yaml");
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    if (cohort_config_load(path, &cfg, &err) != 0)
        fail_msg("config/node.yaml does not load: %s", cohort_err_text(&err));
    size_t count = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    assert_true(count > 0);
    for (size_t i = 0; i < count; i++)
        if (!cohort_config_was_set(cfg, keys[i].key))
            fail_msg("config/node.yaml does not set (and document) %s", keys[i].key);
    char *real = realpath(path, NULL);
    assert_non_null(real);
    assert_string_equal(cfg->path, real);
    free(real);
    cohort_config_destroy(&cfg);
    free(path);
}

static void test_reference_config_documents_every_key_with_reload_note(void **state)
{
    (void)state;
    char *path = test_src_path("config/node.yaml");
    char *text = s_read_file(path);
    size_t count = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    for (size_t i = 0; i < count; i++) {
        /* The comment block right above "  name:" in its section. */
        const char *dot = strchr(keys[i].key, '.');
        char section[64], line[96];
        snprintf(section, sizeof section, "\n%.*s:\n", (int)(dot - keys[i].key), keys[i].key);
        snprintf(line, sizeof line, "\n  %s:", dot + 1);
        const char *sec = strstr(text, section);
        assert_non_null(sec);
        const char *at = strstr(sec, line);
        if (!at)
            fail_msg("config/node.yaml: no line for %s", keys[i].key);
        const char *block = at;
        while (block > text && !(block[-1] == '\n' && block[0] == '\n'))
            block--;
        char *comment = strndup(block, (size_t)(at - block));
        const char *note =
            keys[i].reloadable ? "Reloadable: yes (SIGHUP)" : "Reloadable: no (SIGHUP)";
        if (!strstr(comment, note) || !strstr(comment, "Default:"))
            fail_msg("config/node.yaml: comment of %s lacks '%s' or its default", keys[i].key,
                     note);
        free(comment);
    }
    free(text);
    free(path);
}

static void test_readme_mentions_every_key(void **state)
{
    (void)state;
    char *path = test_src_path("config/README.md");
    char *text = s_read_file(path);
    size_t count = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    for (size_t i = 0; i < count; i++) {
        char cell[96];
        snprintf(cell, sizeof cell, "| `%s` |", keys[i].key);
        if (!strstr(text, cell))
            fail_msg("config/README.md has no row for %s", keys[i].key);
        const char *row = strstr(text, cell);
        const char *end = strchr(row, '\n');
        char *line = strndup(row, (size_t)(end - row));
        if (!strstr(line, keys[i].reloadable ? "| yes |" : "| no |"))
            fail_msg("config/README.md: wrong reloadable column for %s", keys[i].key);
        free(line);
    }
    free(text);
    free(path);
}

static void test_key_table_is_consistent(void **state)
{
    (void)state;
    size_t count = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    for (size_t i = 0; i < count; i++) {
        const cohort_config_key_t *e = &keys[i];
        assert_non_null(strchr(e->key, '.'));
        assert_non_null(e->type_name);
        assert_non_null(e->doc);
        assert_true(strlen(e->doc) > 10);
        assert_true(e->required == (e->default_text == NULL));
        assert_true(e->reloadable == cohort_config_key_reloadable(e->key));
    }
    assert_false(cohort_config_key_reloadable("node.name"));
    assert_false(cohort_config_key_reloadable("listen.port"));
    assert_false(cohort_config_key_reloadable("trust.ca"));
    assert_true(cohort_config_key_reloadable("trust.roster"));
    assert_true(cohort_config_key_reloadable("log.level"));
    assert_true(cohort_config_key_reloadable("limits.send_queue"));
    assert_false(cohort_config_key_reloadable("membership.probe_interval"));
    assert_false(cohort_config_key_reloadable("discovery.lan"));
    assert_false(cohort_config_key_reloadable("no.such"));
}

/* ---- values ---- */

static void test_minimal_config_gets_all_defaults(void **state)
{
    (void)state;
    cohort_config_t *cfg = s_parse(MINIMAL);
    assert_null(cfg->path);
    assert_string_equal(cfg->node_name, "alpha");
    assert_string_equal(cfg->state_dir, "/var/lib/cohort");
    assert_string_equal(cfg->identity_key, "/etc/cohort/node.key");
    assert_string_equal(cfg->identity_cert, "/etc/cohort/node.crt");
    assert_int_equal(cfg->trust_ca_count, 1);
    assert_string_equal(cfg->trust_ca[0], "/etc/cohort/ca.crt");
    assert_string_equal(cfg->roster, "/etc/cohort/roster.yaml");
    assert_string_equal(cfg->roster_sig, "/etc/cohort/roster.yaml.sig");
    assert_string_equal(cfg->listen_address, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 7700);
    assert_int_equal(cfg->punch_port, 7701);
    assert_int_equal(cfg->advertise_count, 0);
    assert_string_equal(cfg->api_endpoint, "ipc:///var/lib/cohort/api.sock");
    assert_int_equal(cfg->log_level, COHORT_CONFIG_LOG_INFO);
    assert_int_equal(cfg->log_format, COHORT_CONFIG_LOG_TEXT);
    assert_int_equal(cfg->max_message_size, 1024 * 1024);
    assert_int_equal(cfg->send_queue, 10000);
    assert_int_equal(cfg->send_timeout_ms, 0);
    assert_true(cohort_config_was_set(cfg, "node.name"));
    assert_true(cohort_config_was_set(cfg, "trust.ca"));
    assert_false(cohort_config_was_set(cfg, "listen.port"));
    assert_false(cohort_config_was_set(cfg, "trust.roster_signature"));
    assert_false(cohort_config_was_set(cfg, "no.such"));
    cohort_config_destroy(&cfg);
    assert_null(cfg);
    cohort_config_destroy(&cfg);
    cohort_config_destroy(NULL);
}

static void test_every_key_can_be_set(void **state)
{
    (void)state;
    cohort_config_t *cfg = s_parse("node:\n  name: Node_2.b-c\n  state_dir: /srv/cohort\n"
                                   "identity:\n  key: keys/n.key\n  cert: /pki/n.crt\n"
                                   "trust:\n  ca: [old.crt, new.crt]\n  roster: r/roster.yaml\n"
                                   "  roster_signature: r/sig\n"
                                   "listen:\n  address: '::'\n  port: 1\n  punch_port: 0\n"
                                   "  advertise:\n    - tcp://203.0.113.7:7700\n"
                                   "    - tcp://[2001:db8::7]:65535\n    - tcp://node-2.example:9\n"
                                   "api:\n  endpoint: tcp://*:7702\n"
                                   "log:\n  level: debug\n  format: json\n"
                                   "limits:\n  max_message_size: 64KiB\n  send_queue: 1000000\n"
                                   "  send_timeout: 1m\n");
    assert_string_equal(cfg->node_name, "Node_2.b-c");
    assert_string_equal(cfg->state_dir, "/srv/cohort");
    assert_string_equal(cfg->identity_key, "/etc/cohort/keys/n.key");
    assert_string_equal(cfg->identity_cert, "/pki/n.crt");
    assert_int_equal(cfg->trust_ca_count, 2);
    assert_string_equal(cfg->trust_ca[0], "/etc/cohort/old.crt");
    assert_string_equal(cfg->trust_ca[1], "/etc/cohort/new.crt");
    assert_string_equal(cfg->roster, "/etc/cohort/r/roster.yaml");
    assert_string_equal(cfg->roster_sig, "/etc/cohort/r/sig");
    assert_string_equal(cfg->listen_address, "::");
    assert_int_equal(cfg->listen_port, 1);
    assert_int_equal(cfg->punch_port, 0);
    assert_int_equal(cfg->advertise_count, 3);
    assert_string_equal(cfg->advertise[1], "tcp://[2001:db8::7]:65535");
    assert_string_equal(cfg->api_endpoint, "tcp://*:7702");
    assert_int_equal(cfg->log_level, COHORT_CONFIG_LOG_DEBUG);
    assert_int_equal(cfg->log_format, COHORT_CONFIG_LOG_JSON);
    assert_int_equal(cfg->max_message_size, 65536);
    assert_int_equal(cfg->send_queue, 1000000);
    assert_int_equal(cfg->send_timeout_ms, 60000);
    cohort_config_destroy(&cfg);
}

static void test_sizes_and_durations_take_units(void **state)
{
    (void)state;
    static const struct {
        const char *size;
        uint64_t bytes;
        const char *timeout;
        uint32_t ms;
    } cases[] = {
        {"64", 64, "0ms", 0},           {"64B", 64, "500ms", 500},
        {"1KiB", 1024, "2s", 2000},     {"64MiB", 64 << 20, "1m", 60000},
        {"1048576B", 1 << 20, "0h", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, MINIMAL "limits:\n  max_message_size: %s\n  send_timeout: %s\n",
                 cases[i].size, cases[i].timeout);
        cohort_config_t *cfg = s_parse(yaml);
        assert_int_equal(cfg->max_message_size, cases[i].bytes);
        assert_int_equal(cfg->send_timeout_ms, cases[i].ms);
        cohort_config_destroy(&cfg);
    }
    s_expect_error(MINIMAL "limits:\n  max_message_size: 0MiB\n",
                   "node.yaml:6:21: limits.max_message_size: must be 64B..64MiB, got '0MiB'");
}

static void test_single_scalar_is_a_one_item_list_and_null_is_empty(void **state)
{
    (void)state;
    cohort_config_t *cfg = s_parse(MINIMAL "listen:\n  advertise: tcp://10.0.0.1:7700\n");
    assert_int_equal(cfg->advertise_count, 1);
    assert_string_equal(cfg->advertise[0], "tcp://10.0.0.1:7700");
    cohort_config_destroy(&cfg);
    cfg = s_parse(MINIMAL "listen:\n  advertise:\nlog:\n");
    assert_int_equal(cfg->advertise_count, 0);
    assert_true(cohort_config_was_set(cfg, "listen.advertise"));
    cohort_config_destroy(&cfg);
}

static void test_relative_paths_resolve_against_the_config_directory(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *real = realpath(dir, NULL);
    assert_non_null(real);
    char *sub = cohort_fs_resolve(dir, "etc");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *path = test_write(sub, "node.yaml",
                            "node:\n  name: alpha\n  state_dir: state\n"
                            "identity:\n  key: keys/node.key\n  cert: /abs/node.crt\n"
                            "trust:\n  ca: [ca.crt, ../ca2.crt]\n",
                            0644);
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    if (cohort_config_load(path, &cfg, &err) != 0)
        fail_msg("%s", cohort_err_text(&err));
    char expect[PATH_MAX + 64];
    snprintf(expect, sizeof expect, "%s/etc/node.yaml", real);
    assert_string_equal(cfg->path, expect);
    snprintf(expect, sizeof expect, "%s/etc/state", real);
    assert_string_equal(cfg->state_dir, expect);
    snprintf(expect, sizeof expect, "%s/etc/keys/node.key", real);
    assert_string_equal(cfg->identity_key, expect);
    assert_string_equal(cfg->identity_cert, "/abs/node.crt");
    snprintf(expect, sizeof expect, "%s/etc/ca.crt", real);
    assert_string_equal(cfg->trust_ca[0], expect);
    snprintf(expect, sizeof expect, "%s/etc/../ca2.crt", real);
    assert_string_equal(cfg->trust_ca[1], expect);
    snprintf(expect, sizeof expect, "%s/etc/roster.yaml.sig", real);
    assert_string_equal(cfg->roster_sig, expect);
    snprintf(expect, sizeof expect, "ipc://%s/etc/state/api.sock", real);
    assert_string_equal(cfg->api_endpoint, expect);
    cohort_config_destroy(&cfg);

    /* A relative path to the file: same result, messages use the path as given. */
    char *cwd = getcwd(NULL, 0);
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(cohort_config_load("etc/node.yaml", &cfg, &err), 0);
    snprintf(expect, sizeof expect, "%s/etc/node.yaml", real);
    assert_string_equal(cfg->path, expect);
    cohort_config_destroy(&cfg);
    free(test_write(sub, "bad.yaml", "node:\n  name: -x\n", 0644));
    assert_int_equal(cohort_config_load("etc/bad.yaml", &cfg, &err), -1);
    assert_string_equal(cohort_err_text(&err),
                        "etc/bad.yaml:2:9: node.name: must be 1..63 characters of A-Z a-z 0-9 . "
                        "_ - starting with a letter or digit, got '-x'");
    assert_int_equal(chdir(cwd), 0);
    free(cwd);
    free(path);
    free(sub);
    free(real);
    test_rmdir(&dir);
}

static void test_parse_without_base_dir_keeps_paths_relative(void **state)
{
    (void)state;
    const char *yaml = MINIMAL;
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_config_parse("node.yaml", NULL, yaml, strlen(yaml), &cfg, &err), 0);
    assert_string_equal(cfg->trust_ca[0], "ca.crt");
    assert_string_equal(cfg->identity_key, "node.key");
    assert_string_equal(cfg->roster_sig, "roster.yaml.sig");
    cohort_config_destroy(&cfg);
}

static void test_roster_signature_and_api_endpoint_defaults_are_resolved(void **state)
{
    (void)state;
    cohort_config_t *cfg = s_parse("node:\n  name: a\n  state_dir: /run/c\n"
                                   "trust:\n  ca: ca.crt\n  roster: /r/members.yaml\n"
                                   "  roster_signature: ''\napi:\n  endpoint: ''\n");
    assert_string_equal(cfg->roster_sig, "/r/members.yaml.sig");
    assert_string_equal(cfg->api_endpoint, "ipc:///run/c/api.sock");
    assert_true(cohort_config_was_set(cfg, "api.endpoint"));
    cohort_config_destroy(&cfg);

    cfg = s_parse(MINIMAL "api:\n  endpoint: ipc://run/api.sock\n");
    assert_string_equal(cfg->api_endpoint, "ipc:///etc/cohort/run/api.sock");
    cohort_config_destroy(&cfg);
    cfg = s_parse(MINIMAL "api:\n  endpoint: ipc://@cohort-api\n");
    assert_string_equal(cfg->api_endpoint, "ipc://@cohort-api");
    cohort_config_destroy(&cfg);
}

/* ---- emitting ---- */

static void s_round_trip(const char *yaml)
{
    cohort_config_t *cfg = s_parse(yaml);
    char *first = s_emit(cfg);
    cohort_config_t *again = s_parse(first);
    char *second = s_emit(again);
    assert_string_equal(first, second);
    size_t count = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    for (size_t i = 0; i < count; i++)
        assert_true(cohort_config_was_set(again, keys[i].key));
    free(first);
    free(second);
    cohort_config_destroy(&cfg);
    cohort_config_destroy(&again);
}

static void test_emit_parse_emit_round_trip_is_byte_identical(void **state)
{
    (void)state;
    s_round_trip(MINIMAL);
    char *path = test_src_path("config/node.yaml");
    char *text = s_read_file(path);
    s_round_trip(text);
    free(text);
    free(path);
    s_round_trip("node:\n  name: 'true'\n  state_dir: \"/odd dir/#x: y\"\n"
                 "trust:\n  ca: [\"a\\tb\", \"c\\u00e9\\u2028d\", '-', '~', 'null']\n"
                 "listen:\n  address: '*'\n  advertise: ['tcp://[::1]:1', tcp://h:2]\n"
                 "api:\n  endpoint: 'ipc:///x y/api.sock'\n"
                 "limits:\n  max_message_size: 1000\n  send_timeout: 1500ms\n");
}

static void test_emit_writes_every_key_with_units(void **state)
{
    (void)state;
    cohort_config_t *cfg = s_parse(MINIMAL "limits:\n  max_message_size: 2048KiB\n"
                                           "  send_timeout: 30000ms\n");
    char *text = s_emit(cfg);
    assert_string_equal(text, "node:\n"
                              "  name: alpha\n"
                              "  state_dir: /var/lib/cohort\n"
                              "identity:\n"
                              "  key: /etc/cohort/node.key\n"
                              "  cert: /etc/cohort/node.crt\n"
                              "trust:\n"
                              "  ca:\n"
                              "  - /etc/cohort/ca.crt\n"
                              "  roster: /etc/cohort/roster.yaml\n"
                              "  roster_signature: /etc/cohort/roster.yaml.sig\n"
                              "listen:\n"
                              "  address: \"0.0.0.0\"\n"
                              "  port: 7700\n"
                              "  punch_port: 7701\n"
                              "  advertise: []\n"
                              "api:\n"
                              "  endpoint: ipc:///var/lib/cohort/api.sock\n"
                              "log:\n"
                              "  level: info\n"
                              "  format: text\n"
                              "limits:\n"
                              "  max_message_size: 2MiB\n"
                              "  send_queue: 10000\n"
                              "  receive_queue: 100000\n"
                              "  receive_bytes: 64MiB\n"
                              "  peer_receive_queue: 1000\n"
                              "  send_timeout: 30s\n"
                              "links:\n"
                              "  direct_timeout: 2s\n"
                              "  punch_timeout: 3s\n"
                              "  upgrade_interval: 30s\n"
                              "  probe_timeout: 3s\n"
                              "proxy:\n"
                              "  socks5: \"\"\n"
                              "relay:\n"
                              "  pair_bytes_per_second: 16MiB\n"
                              "  pair_messages_per_second: 100000\n"
                              "membership:\n"
                              "  probe_interval: 1s\n"
                              "  probe_timeout: 500ms\n"
                              "  suspicion_timeout: 4s\n"
                              "  indirect_probes: 3\n"
                              "discovery:\n"
                              "  lan: false\n"
                              "  port: 7702\n"
                              "  address: \"255.255.255.255\"\n"
                              "  interval: 5s\n"
                              "metrics:\n"
                              "  address: \"\"\n");
    free(text);
    cohort_config_destroy(&cfg);
}

/* ---- reload ---- */

/* Every key set, to a value other than its default (A) or to another one
 * again (B), so each key differs between A and B. */
static const char s_reload_a[] = "node:\n  name: alpha\n  state_dir: /srv/a\n"
                                 "identity:\n  key: a.key\n  cert: a.crt\n"
                                 "trust:\n  ca: [a.crt]\n  roster: a/roster.yaml\n"
                                 "  roster_signature: a/roster.sig\n"
                                 "listen:\n  address: 10.0.0.1\n  port: 7000\n"
                                 "  punch_port: 7001\n  advertise: [tcp://a.example:1]\n"
                                 "api:\n  endpoint: tcp://127.0.0.1:9001\n"
                                 "log:\n  level: debug\n  format: json\n"
                                 "limits:\n  max_message_size: 64KiB\n  send_queue: 100\n"
                                 "  receive_queue: 100\n  receive_bytes: 1MiB\n"
                                 "  peer_receive_queue: 50\n"
                                 "  send_timeout: 1s\n"
                                 "links:\n  direct_timeout: 1s\n  punch_timeout: 1s\n"
                                 "  upgrade_interval: 10s\n  probe_timeout: 1s\n"
                                 "proxy:\n  socks5: proxy-a:1080\n"
                                 "relay:\n  pair_bytes_per_second: 1MiB\n"
                                 "  pair_messages_per_second: 1000\n"
                                 "membership:\n  probe_interval: 2s\n  probe_timeout: 100ms\n"
                                 "  suspicion_timeout: 8s\n  indirect_probes: 1\n"
                                 "discovery:\n  lan: true\n  port: 7800\n"
                                 "  address: 10.0.0.255\n  interval: 1s\n"
                                 "metrics:\n  address: 127.0.0.1:9464\n";
static const char s_reload_b[] = "node:\n  name: beta\n  state_dir: /srv/b\n"
                                 "identity:\n  key: b.key\n  cert: b.crt\n"
                                 "trust:\n  ca: [a.crt, b.crt]\n  roster: b/roster.yaml\n"
                                 "  roster_signature: b/roster.sig\n"
                                 "listen:\n  address: 10.0.0.2\n  port: 8000\n"
                                 "  punch_port: 8001\n"
                                 "  advertise: [tcp://b.example:2, tcp://c.example:3]\n"
                                 "api:\n  endpoint: tcp://127.0.0.1:9002\n"
                                 "log:\n  level: error\n  format: text\n"
                                 "limits:\n  max_message_size: 1KiB\n  send_queue: 200\n"
                                 "  receive_queue: 200\n  receive_bytes: 2MiB\n"
                                 "  peer_receive_queue: 60\n"
                                 "  send_timeout: 2s\n"
                                 "links:\n  direct_timeout: 2500ms\n  punch_timeout: 4s\n"
                                 "  upgrade_interval: 1m\n  probe_timeout: 5s\n"
                                 "proxy:\n  socks5: proxy-b:1080\n"
                                 "relay:\n  pair_bytes_per_second: 2MiB\n"
                                 "  pair_messages_per_second: 2000\n"
                                 "membership:\n  probe_interval: 3s\n  probe_timeout: 200ms\n"
                                 "  suspicion_timeout: 9s\n  indirect_probes: 2\n"
                                 "discovery:\n  lan: false\n  port: 7900\n"
                                 "  address: 10.0.1.255\n  interval: 2s\n"
                                 "metrics:\n  address: \"[::1]:9465\"\n";

static void test_reload_copies_every_reloadable_key_and_no_other(void **state)
{
    (void)state;
    cohort_config_t *running = s_parse(s_reload_a), *before = s_parse(s_reload_a);
    cohort_config_t *fresh = s_parse(s_reload_b);
    size_t count = 0, reloadable = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    char expect[COHORT_CONFIG_KEY_LIST_MAX] = "", restart[COHORT_CONFIG_KEY_LIST_MAX] = "";
    for (size_t i = 0; i < count; i++) {
        /* The fixtures are only worth something if every key differs. */
        if (cohort_config_same(running, fresh, keys[i].key))
            fail_msg("the fixtures set %s to the same value", keys[i].key);
        char *list = keys[i].reloadable ? expect : restart;
        size_t len = strlen(list);
        snprintf(list + len, COHORT_CONFIG_KEY_LIST_MAX - len, "%s%s", len ? "," : "", keys[i].key);
        reloadable += keys[i].reloadable;
    }
    char got[COHORT_CONFIG_KEY_LIST_MAX];
    assert_int_equal(cohort_config_restart_needed(running, fresh, got, sizeof got),
                     count - reloadable);
    assert_string_equal(got, restart);
    assert_int_equal(cohort_config_apply_reloadable(running, fresh, got, sizeof got), reloadable);
    assert_string_equal(got, expect);
    for (size_t i = 0; i < count; i++) {
        if (keys[i].reloadable && !cohort_config_same(running, fresh, keys[i].key))
            fail_msg("%s is reloadable but was not copied", keys[i].key);
        if (!keys[i].reloadable && !cohort_config_same(running, before, keys[i].key))
            fail_msg("%s is not reloadable but was changed", keys[i].key);
    }
    /* Copies, not borrowed pointers: fresh can go. */
    assert_ptr_not_equal(running->roster, fresh->roster);
    assert_ptr_not_equal(running->advertise, fresh->advertise);
    cohort_config_destroy(&fresh);
    assert_string_equal(running->roster, "/etc/cohort/b/roster.yaml");
    assert_string_equal(running->roster_sig, "/etc/cohort/b/roster.sig");
    assert_int_equal(running->advertise_count, 2);
    assert_string_equal(running->advertise[1], "tcp://c.example:3");
    assert_int_equal(running->max_message_size, 1024);
    assert_int_equal(running->send_queue, 200);
    assert_int_equal(running->send_timeout_ms, 2000);
    assert_int_equal(running->probe_timeout_ms, 5000);
    assert_int_equal(running->relay_pair_msgs, 2000);
    assert_int_equal(running->log_level, COHORT_CONFIG_LOG_ERROR);
    assert_string_equal(running->node_name, "alpha");
    assert_int_equal(running->trust_ca_count, 1);
    assert_int_equal(running->listen_port, 7000);
    assert_int_equal(running->swim_probe_interval_ms, 2000);
    /* A second time: nothing left to change. */
    fresh = s_parse(s_reload_b);
    assert_int_equal(cohort_config_apply_reloadable(running, fresh, got, sizeof got), 0);
    assert_string_equal(got, "");
    assert_int_equal(cohort_config_restart_needed(running, fresh, NULL, 0), count - reloadable);
    cohort_config_destroy(&fresh);
    cohort_config_destroy(&before);
    cohort_config_destroy(&running);
}

static void test_reload_empties_a_list_and_takes_the_set_bits(void **state)
{
    (void)state;
    cohort_config_t *running =
        s_parse(MINIMAL "listen:\n  advertise: [tcp://a:1, tcp://b:2]\nlog:\n  level: warn\n");
    cohort_config_t *fresh = s_parse(MINIMAL "listen:\n  port: 7000\n");
    char got[COHORT_CONFIG_KEY_LIST_MAX];
    assert_int_equal(cohort_config_apply_reloadable(running, fresh, got, sizeof got), 2);
    assert_string_equal(got, "listen.advertise,log.level");
    assert_int_equal(running->advertise_count, 0);
    assert_null(running->advertise);
    assert_int_equal(running->log_level, COHORT_CONFIG_LOG_INFO);
    assert_false(cohort_config_was_set(running, "listen.advertise"));
    assert_false(cohort_config_was_set(running, "log.level"));
    /* listen.port needs a restart: neither its value nor its bit moved. */
    assert_int_equal(running->listen_port, 7700);
    assert_false(cohort_config_was_set(running, "listen.port"));
    assert_int_equal(cohort_config_restart_needed(running, fresh, got, sizeof got), 1);
    assert_string_equal(got, "listen.port");
    cohort_config_destroy(&fresh);
    cohort_config_destroy(&running);
}

static void test_reload_key_list_is_cut_with_an_ellipsis(void **state)
{
    (void)state;
    cohort_config_t *running = s_parse(s_reload_a), *fresh = s_parse(s_reload_b);
    char got[32];
    cohort_config_restart_needed(running, fresh, got, sizeof got);
    assert_string_equal(got, "node.name,node.state_dir,...");
    /* Every key fits in COHORT_CONFIG_KEY_LIST_MAX. */
    size_t count = 0, total = 0;
    const cohort_config_key_t *keys = cohort_config_keys(&count);
    for (size_t i = 0; i < count; i++)
        total += strlen(keys[i].key) + 1;
    assert_true(total <= COHORT_CONFIG_KEY_LIST_MAX);
    cohort_config_destroy(&fresh);
    cohort_config_destroy(&running);
}

/* ---- refusals: the full text, position included ---- */

static void test_unknown_key_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  prot: 7700\n",
                   "node.yaml:6:3: listen: unknown key (known: address, port, punch_port, "
                   "advertise), got 'prot'");
}

static void test_bad_socks5_proxy_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "proxy:\n  socks5: nohost\n",
                   "node.yaml:6:11: proxy.socks5: must be empty or HOST:PORT, got 'nohost'");
    s_expect_error(MINIMAL "proxy:\n  socks5: \"h:99999\"\n",
                   "node.yaml:6:11: proxy.socks5: must be empty or HOST:PORT, got 'h:99999'");
}

static void test_bad_metrics_address_is_refused(void **state)
{
    (void)state;
    static const char rule[] =
        "must be empty or IP:PORT with an IPv4 literal or [IPv6] and PORT 1..65535";
    static const char *const bad[] = {"9464",          "localhost:9464",  "127.0.0.1",
                                      "127.0.0.1:0",   "127.0.0.1:65536", "::1:9464",
                                      "[::1]",         "[nope]:9464",     "http://1.2.3.4:1",
                                      "1.2.3.4:+9464", "*:9464"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[128], expect[256];
        snprintf(yaml, sizeof yaml, MINIMAL "metrics:\n  address: \"%s\"\n", bad[i]);
        snprintf(expect, sizeof expect, "node.yaml:6:12: metrics.address: %s, got '%s'", rule,
                 bad[i]);
        s_expect_error(yaml, expect);
    }
    cohort_config_t *cfg = s_parse(MINIMAL "metrics:\n  address: \"[::1]:9464\"\n");
    assert_string_equal(cfg->metrics_address, "[::1]:9464");
    cohort_config_destroy(&cfg);
    cfg = s_parse(MINIMAL "metrics:\n  address: 0.0.0.0:80\n");
    assert_string_equal(cfg->metrics_address, "0.0.0.0:80");
    cohort_config_destroy(&cfg);
    cfg = s_parse(MINIMAL);
    assert_string_equal(cfg->metrics_address, "");
    cohort_config_destroy(&cfg);
}

static void test_unknown_section_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "lsten:\n  port: 7700\n",
                   "node.yaml:5:1: unknown section (known: node, identity, trust, listen, api, "
                   "log, limits, links, proxy, relay, membership, discovery, metrics), got "
                   "'lsten'");
}

static void test_port_out_of_range_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  port: 70000\n",
                   "node.yaml:6:9: listen.port: must be 1..65535, got '70000'");
    s_expect_error(MINIMAL "listen:\n  port: 0\n",
                   "node.yaml:6:9: listen.port: must be 1..65535, got '0'");
}

static void test_negative_number_is_refused(void **state)
{
    (void)state;
    s_expect_error(
        MINIMAL "listen:\n  port: -1\n",
        "node.yaml:6:9: listen.port: must be a plain decimal integer 1..65535, got '-1'");
}

static void test_number_with_junk_sign_or_leading_zero_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  port: 12ab\n",
                   "node.yaml:6:9: listen.port: must be a plain decimal integer 1..65535, got "
                   "'12ab'");
    s_expect_error(MINIMAL "listen:\n  port: '+80'\n",
                   "node.yaml:6:9: listen.port: must be a plain decimal integer 1..65535, got "
                   "'+80'");
    s_expect_error(MINIMAL "listen:\n  port: 0x1f\n",
                   "node.yaml:6:9: listen.port: must be a plain decimal integer 1..65535, got "
                   "'0x1f'");
    s_expect_error(MINIMAL "listen:\n  port: 07700\n",
                   "node.yaml:6:9: listen.port: must be a plain decimal integer 1..65535, got "
                   "'07700'");
    s_expect_error(MINIMAL "listen:\n  port: ''\n",
                   "node.yaml:6:9: listen.port: must be a plain decimal integer 1..65535, got ''");
}

static void test_number_overflow_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  port: 99999999999999999999\n",
                   "node.yaml:6:9: listen.port: must be 1..65535, got '99999999999999999999'");
    s_expect_error(MINIMAL "limits:\n  max_message_size: 18014398509481984GiB\n",
                   "node.yaml:6:21: limits.max_message_size: must be 64B..64MiB, got "
                   "'18014398509481984GiB'");
    s_expect_error(MINIMAL "limits:\n  send_timeout: 5124095576030432h\n",
                   "node.yaml:6:17: limits.send_timeout: must be 0ms..1m, got "
                   "'5124095576030432h'");
}

static void test_wrong_node_types_are_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  port: [7700]\n",
                   "node.yaml:6:9: listen.port: expected a scalar, got a list");
    s_expect_error(MINIMAL "listen: 7700\n",
                   "node.yaml:5:9: listen: expected a mapping, got a scalar");
    s_expect_error(MINIMAL "listen:\n  advertise: {a: b}\n",
                   "node.yaml:6:14: listen.advertise: expected a list, got a mapping");
    s_expect_error(MINIMAL "listen:\n  advertise: [[tcp://a:1]]\n",
                   "node.yaml:6:15: listen.advertise: expected a list of scalars, got a list");
    s_expect_error("- node\n", "node.yaml:1:1: expected a mapping of sections, got a list");
    s_expect_error("? [a]\n: b\n", "node.yaml:1:3: expected a section name, got a list");
    s_expect_error("node:\n  ? {a: b}\n  : c\n",
                   "node.yaml:2:5: node: expected a key name, got a mapping");
}

static void test_duplicate_key_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  port: 7700\n  port: 7702\n",
                   "node.yaml:7:3: listen.port: duplicate key, first at line 6");
    s_expect_error(MINIMAL "node:\n  state_dir: /x\n",
                   "node.yaml:5:1: node: duplicate section, first at line 1");
}

static void test_missing_required_keys_are_refused(void **state)
{
    (void)state;
    s_expect_error("trust:\n  ca: ca.crt\n", "node.yaml: node.name: required key is missing");
    s_expect_error("node:\n  name: alpha\n", "node.yaml: trust.ca: required key is missing");
    s_expect_error("node:\ntrust:\n  ca: x\n", "node.yaml: node.name: required key is missing");
}

static void test_bad_node_name_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"my node", "-lead", "_x", "é", "a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[128], expect[512], quoted[64];
        snprintf(yaml, sizeof yaml, "node:\n  name: '%s'\ntrust:\n  ca: x\n", bad[i]);
        snprintf(expect, sizeof expect,
                 "node.yaml:2:9: node.name: must be 1..63 characters of A-Z a-z 0-9 . _ - "
                 "starting with a letter or digit, got %s",
                 cohort_err_quote(quoted, sizeof quoted, bad[i], strlen(bad[i])));
        s_expect_error(yaml, expect);
    }
    s_expect_error("node:\n  name: ''\ntrust:\n  ca: x\n",
                   "node.yaml:2:9: node.name: must not be empty, got ''");
    /* 63 characters are fine, 64 are not. */
    char name[65];
    memset(name, 'a', 64);
    name[64] = '\0';
    char yaml[256], expect[512];
    snprintf(yaml, sizeof yaml, "node:\n  name: %s\ntrust:\n  ca: x\n", name);
    snprintf(expect, sizeof expect,
             "node.yaml:2:9: node.name: must be 1..63 characters of A-Z a-z 0-9 . _ - starting "
             "with a letter or digit, got '%s'",
             name);
    s_expect_error(yaml, expect);
    name[63] = '\0';
    snprintf(yaml, sizeof yaml, "node:\n  name: %s\ntrust:\n  ca: x\n", name);
    cohort_config_t *cfg = s_parse(yaml);
    cohort_config_destroy(&cfg);
}

static void test_bad_enum_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "log:\n  level: verbose\n",
                   "node.yaml:6:10: log.level: must be one of debug, info, warn, error, got "
                   "'verbose'");
    s_expect_error(MINIMAL "log:\n  format: JSON\n",
                   "node.yaml:6:11: log.format: must be one of text, json, got 'JSON'");
}

static void test_bad_size_suffix_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"1MB", "1 MiB", "1mib", "MiB", "1.5MiB", "-1KiB", "01KiB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[128], expect[512];
        snprintf(yaml, sizeof yaml, MINIMAL "limits:\n  max_message_size: %s\n", bad[i]);
        snprintf(expect, sizeof expect,
                 "node.yaml:6:21: limits.max_message_size: must be a size like 65536, 64KiB or "
                 "1MiB (units B, KiB, MiB, GiB), got '%s'",
                 bad[i]);
        s_expect_error(yaml, expect);
    }
    s_expect_error(MINIMAL "limits:\n  max_message_size: 65MiB\n",
                   "node.yaml:6:21: limits.max_message_size: must be 64B..64MiB, got '65MiB'");
}

static void test_duration_without_unit_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "limits:\n  send_timeout: 500\n",
                   "node.yaml:6:17: limits.send_timeout: needs a unit (ms, s, m, h), got '500'");
    s_expect_error(MINIMAL "limits:\n  send_timeout: 2sec\n",
                   "node.yaml:6:17: limits.send_timeout: must be a duration like 500ms, 2s, 1m "
                   "or 1h, got '2sec'");
    s_expect_error(MINIMAL "limits:\n  send_timeout: 61s\n",
                   "node.yaml:6:17: limits.send_timeout: must be 0ms..1m, got '61s'");
}

static void test_punch_port_equal_to_port_is_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  port: 7000\n  punch_port: 7000\n",
                   "node.yaml:7:15: listen.punch_port: must differ from listen.port (0 turns "
                   "punching off), got '7000'");
    s_expect_error(MINIMAL "listen:\n  port: 7701\n",
                   "node.yaml:6:9: listen.port: must differ from listen.punch_port (default "
                   "7701), got '7701'");
    cohort_config_t *cfg = s_parse(MINIMAL "listen:\n  port: 7000\n  punch_port: 0\n");
    assert_int_equal(cfg->punch_port, 0);
    cohort_config_destroy(&cfg);
}

static void test_bad_advertise_endpoint_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "10.0.0.1:7700",    "tcp://:7700",    "tcp://host",     "tcp://host:0", "tcp://host:1x",
        "tcp://host:65536", "tcp://[::1:7",   "tcp://[nope]:7", "tcp://*:7700", "tcp://a b:7",
        "udp://a:7",        "tcp://::1:7700", "tcp://host:007",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[128], expect[512];
        snprintf(yaml, sizeof yaml, MINIMAL "listen:\n  advertise: ['tcp://ok:1', '%s']\n", bad[i]);
        snprintf(expect, sizeof expect,
                 "node.yaml:6:29: listen.advertise: must be tcp://HOST:PORT with PORT 1..65535, "
                 "got '%s'",
                 bad[i]);
        s_expect_error(yaml, expect);
    }
    s_expect_error(MINIMAL "listen:\n  advertise: ['']\n",
                   "node.yaml:6:15: listen.advertise: must not be empty, got ''");
}

static void test_bad_listen_address_and_api_endpoint_are_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  address: localhost\n",
                   "node.yaml:6:12: listen.address: must be an IPv4 or IPv6 address, or *, got "
                   "'localhost'");
    s_expect_error(MINIMAL "listen:\n  address: ''\n",
                   "node.yaml:6:12: listen.address: must not be empty, got ''");
    s_expect_error(MINIMAL "api:\n  endpoint: http://x:1\n",
                   "node.yaml:6:13: api.endpoint: must be ipc://PATH or tcp://HOST:PORT, got "
                   "'http://x:1'");
    s_expect_error(MINIMAL "api:\n  endpoint: ipc://\n",
                   "node.yaml:6:13: api.endpoint: must be ipc://PATH or tcp://HOST:PORT, got "
                   "'ipc://'");
}

static void test_ca_list_size_is_bounded(void **state)
{
    (void)state;
    s_expect_error("node:\n  name: a\ntrust:\n  ca: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]\n",
                   "node.yaml:4:7: trust.ca: must have 1..16 items, got 17");
    s_expect_error("node:\n  name: a\ntrust:\n  ca: []\n",
                   "node.yaml:4:7: trust.ca: must have 1..16 items, got 0");
    s_expect_error("node:\n  name: a\ntrust:\n  ca: [a, '']\n",
                   "node.yaml:4:11: trust.ca: must not be empty, got ''");
    cohort_config_t *cfg = s_parse("node:\n  name: a\ntrust:\n  ca: [a,b,c,d,e,f,g,h,i,j,k,l,"
                                   "m,n,o,p]\n");
    assert_int_equal(cfg->trust_ca_count, 16);
    cohort_config_destroy(&cfg);
}

static void test_path_rules_are_enforced(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "identity:\n  key: ''\n",
                   "node.yaml:6:8: identity.key: must not be empty, got ''");
    s_expect_error(MINIMAL "identity:\n  key: \"a\\0b\"\n",
                   "node.yaml:6:8: identity.key: must not contain NUL bytes, got 'a\\x00b'");
    /* 4095 bytes once resolved is the limit: "/etc/cohort/" is 12 of them. */
    char *yaml = malloc(8192);
    char *long_name = malloc(4096);
    memset(long_name, 'k', 4083);
    long_name[4083] = '\0';
    snprintf(yaml, 8192, MINIMAL "identity:\n  key: %s\n", long_name);
    cohort_config_t *cfg = s_parse(yaml);
    assert_int_equal(strlen(cfg->identity_key), 4096 - 1);
    cohort_config_destroy(&cfg);
    long_name[4083] = 'k';
    long_name[4084] = '\0';
    snprintf(yaml, 8192, MINIMAL "identity:\n  key: %s\n", long_name);
    cohort_config_t *none = NULL;
    cohort_err_t err;
    assert_int_equal(
        cohort_config_parse("node.yaml", "/etc/cohort", yaml, strlen(yaml), &none, &err), -1);
    assert_non_null(strstr(cohort_err_text(&err),
                           "node.yaml:6:8: identity.key: must be at most 4095 bytes once "
                           "resolved, got 'kkkk"));
    free(long_name);
    free(yaml);
}

/* Expects an error starting with prefix (the quoted value is cut short). */
static void s_expect_error_prefix(const char *yaml, const char *prefix)
{
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    assert_int_equal(
        cohort_config_parse("node.yaml", "/etc/cohort", yaml, strlen(yaml), &cfg, &err), -1);
    if (strncmp(cohort_err_text(&err), prefix, strlen(prefix)) != 0)
        fail_msg("got: %s\nwanted: %s...", cohort_err_text(&err), prefix);
}

static void test_derived_values_over_the_length_limit_are_refused(void **state)
{
    (void)state;
    /* Derived values obey the same limit as explicit ones, or an emitted
     * config would not load again. */
    char *yaml = malloc(8192);
    char *name = malloc(4096);
    memset(name, 'r', 4091);
    name[4090] = '\0';
    /* "/" + 4090 bytes + ".sig" is exactly 4095. */
    snprintf(yaml, 8192, "node:\n  name: a\ntrust:\n  ca: x\n  roster: /%s\n", name);
    cohort_config_t *cfg = s_parse(yaml);
    assert_int_equal(strlen(cfg->roster_sig), 4095);
    cohort_config_destroy(&cfg);
    name[4090] = 'r';
    name[4091] = '\0';
    snprintf(yaml, 8192, "node:\n  name: a\ntrust:\n  ca: x\n  roster: /%s\n", name);
    s_expect_error_prefix(yaml, "node.yaml:5:11: trust.roster_signature: derived from "
                                "trust.roster, would be longer than 4095 bytes; set it "
                                "explicitly, got '/rrrr");
    snprintf(yaml, 8192, "node:\n  name: a\n  state_dir: /%s\ntrust:\n  ca: x\n", name);
    s_expect_error_prefix(yaml, "node.yaml:3:14: api.endpoint: derived from node.state_dir, "
                                "would be longer than 4095 bytes; set it explicitly, got '/rrrr");
    name[4080] = '\0'; /* 4086 bytes as written, 4098 once resolved */
    snprintf(yaml, 8192, MINIMAL "api:\n  endpoint: ipc://%s\n", name);
    s_expect_error_prefix(yaml, "node.yaml:6:13: api.endpoint: must be at most 4095 bytes once "
                                "resolved, got 'ipc://rrrr");
    free(name);
    free(yaml);
}

static void test_malformed_yaml_is_refused_with_its_position(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "listen:\n  advertise: [tcp://a:1\n",
                   "node.yaml:7:1: invalid YAML: did not find expected ',' or ']' while parsing "
                   "a flow sequence");
    s_expect_error("node:\n  name: a\n bad: indent\n",
                   "node.yaml:3:2: invalid YAML: did not find expected key while parsing a block "
                   "mapping");
    s_expect_error("node:\n\tname: a\n",
                   "node.yaml:2:1: invalid YAML: found character that cannot start any token "
                   "while scanning for the next token");
}

static void test_aliases_are_refused(void **state)
{
    (void)state;
    s_expect_error("node: &n\n  name: a\ntrust:\n  ca: x\nidentity: *n\n",
                   "node.yaml:5:11: aliases (*name) are not supported");
    /* An alias to the root would make the document contain itself. */
    s_expect_error("&a {node: *a}\n", "node.yaml:1:11: aliases (*name) are not supported");
    s_expect_error(MINIMAL "log:\n  level: *nope\n",
                   "node.yaml:6:10: aliases (*name) are not supported");
}

static void test_two_documents_are_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "---\n" MINIMAL, "node.yaml:5:1: only one YAML document is allowed");
}

static void test_empty_file_is_refused(void **state)
{
    (void)state;
    s_expect_error("", "node.yaml: expected a mapping of sections, got an empty document");
    s_expect_error("# only a comment\n\n",
                   "node.yaml: expected a mapping of sections, got an empty document");
    s_expect_error("---\n", "node.yaml: expected a mapping of sections, got an empty document");
    s_expect_error("just text\n", "node.yaml:1:1: expected a mapping of sections, got a scalar");
}

static void test_file_over_one_mib_is_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    size_t size = COHORT_CONFIG_MAX_FILE + 1;
    char *text = malloc(size + 1);
    memset(text, '#', size);
    text[0] = '\n';
    text[size] = '\0';
    for (size_t i = 80; i < size; i += 80)
        text[i] = '\n';
    char *path = test_write(dir, "big.yaml", text, 0644);
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_config_load(path, &cfg, &err), -1);
    assert_null(cfg);
    char expect[4200];
    snprintf(expect, sizeof expect, "%s: file is 1048577 bytes, larger than the limit of 1048576",
             path);
    assert_string_equal(cohort_err_text(&err), expect);
    /* The same limit holds for parse, which callers may feed from anywhere. */
    assert_int_equal(cohort_config_parse("big.yaml", NULL, text, size, &cfg, &err), -1);
    assert_string_equal(cohort_err_text(&err),
                        "big.yaml: config is 1048577 bytes, larger than the limit of 1048576");
    /* One byte less is only comments: an empty document, not a size error. */
    text[size - 1] = '\0';
    free(path);
    path = test_write(dir, "max.yaml", text, 0644);
    assert_int_equal(cohort_config_load(path, &cfg, &err), -1);
    snprintf(expect, sizeof expect, "%s: expected a mapping of sections, got an empty document",
             path);
    assert_string_equal(cohort_err_text(&err), expect);
    free(path);
    free(text);
    test_rmdir(&dir);
}

static void test_missing_file_is_refused(void **state)
{
    (void)state;
    cohort_config_t *cfg = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_config_load("/nonexistent/cohort/node.yaml", &cfg, &err), -1);
    assert_string_equal(cohort_err_text(&err),
                        "/nonexistent/cohort/node.yaml: cannot open: No such file or directory");
}

static void test_non_utf8_bytes_are_refused(void **state)
{
    (void)state;
    s_expect_error(MINIMAL "log:\n  level: inf\xff\n",
                   "node.yaml:6:13: invalid YAML: invalid leading UTF-8 octet");
    /* A sequence cut short is reported at the byte that breaks it. */
    s_expect_error(MINIMAL "log:\n  level: \xc3\n",
                   "node.yaml:6:11: invalid YAML: invalid trailing UTF-8 octet");
    static const char nul[] = MINIMAL "log:\n  level: a\0b\n";
    s_expect_error_len(nul, sizeof nul - 1,
                       "node.yaml:6:11: invalid YAML: control characters are not allowed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_key_is_refused),
        cmocka_unit_test(test_unknown_section_is_refused),
        cmocka_unit_test(test_bad_socks5_proxy_is_refused),
        cmocka_unit_test(test_bad_metrics_address_is_refused),
        cmocka_unit_test(test_port_out_of_range_is_refused),
        cmocka_unit_test(test_negative_number_is_refused),
        cmocka_unit_test(test_number_with_junk_sign_or_leading_zero_is_refused),
        cmocka_unit_test(test_number_overflow_is_refused),
        cmocka_unit_test(test_wrong_node_types_are_refused),
        cmocka_unit_test(test_duplicate_key_is_refused),
        cmocka_unit_test(test_missing_required_keys_are_refused),
        cmocka_unit_test(test_bad_node_name_is_refused),
        cmocka_unit_test(test_bad_enum_is_refused),
        cmocka_unit_test(test_bad_size_suffix_is_refused),
        cmocka_unit_test(test_duration_without_unit_is_refused),
        cmocka_unit_test(test_punch_port_equal_to_port_is_refused),
        cmocka_unit_test(test_bad_advertise_endpoint_is_refused),
        cmocka_unit_test(test_bad_listen_address_and_api_endpoint_are_refused),
        cmocka_unit_test(test_ca_list_size_is_bounded),
        cmocka_unit_test(test_path_rules_are_enforced),
        cmocka_unit_test(test_derived_values_over_the_length_limit_are_refused),
        cmocka_unit_test(test_malformed_yaml_is_refused_with_its_position),
        cmocka_unit_test(test_aliases_are_refused),
        cmocka_unit_test(test_two_documents_are_refused),
        cmocka_unit_test(test_empty_file_is_refused),
        cmocka_unit_test(test_file_over_one_mib_is_refused),
        cmocka_unit_test(test_missing_file_is_refused),
        cmocka_unit_test(test_non_utf8_bytes_are_refused),
        cmocka_unit_test(test_reference_config_loads_and_sets_every_key),
        cmocka_unit_test(test_reference_config_documents_every_key_with_reload_note),
        cmocka_unit_test(test_readme_mentions_every_key),
        cmocka_unit_test(test_key_table_is_consistent),
        cmocka_unit_test(test_minimal_config_gets_all_defaults),
        cmocka_unit_test(test_every_key_can_be_set),
        cmocka_unit_test(test_sizes_and_durations_take_units),
        cmocka_unit_test(test_single_scalar_is_a_one_item_list_and_null_is_empty),
        cmocka_unit_test(test_relative_paths_resolve_against_the_config_directory),
        cmocka_unit_test(test_parse_without_base_dir_keeps_paths_relative),
        cmocka_unit_test(test_roster_signature_and_api_endpoint_defaults_are_resolved),
        cmocka_unit_test(test_emit_parse_emit_round_trip_is_byte_identical),
        cmocka_unit_test(test_emit_writes_every_key_with_units),
        cmocka_unit_test(test_reload_copies_every_reloadable_key_and_no_other),
        cmocka_unit_test(test_reload_empties_a_list_and_takes_the_set_bits),
        cmocka_unit_test(test_reload_key_list_is_cut_with_an_ellipsis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
