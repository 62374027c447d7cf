#include "config.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <string.h>

#define MAX_CONFIG_BYTES (1 << 20)

static struct pv_config *config_defaults(void)
{
	struct pv_config *c = pv_xcalloc(1, sizeof(*c));
	c->socket_path = pv_xstrdup(PV_DEFAULT_SOCKET);
	c->root_dir = pv_xstrdup(PV_DEFAULT_ROOT);
	c->state_dir = pv_xstrdup(PV_DEFAULT_STATE);
	c->log_level = PV_LOG_INFO;
	c->cgroup_driver = pv_xstrdup("cgroupfs");
	c->max_concurrent_calls = 1024;
	c->stream_address = pv_xstrdup("127.0.0.1");
	return c;
}

void pv_config_free(struct pv_config *c)
{
	if (!c)
		return;
	free(c->config_path);
	free(c->socket_path);
	free(c->root_dir);
	free(c->state_dir);
	free(c->cgroup_driver);
	free(c->stream_address);
	free(c->stream_tls_cert);
	free(c->stream_tls_key);
	json_decref(c->root_json);
	free(c->source_text);
	free(c);
}

int64_t pv_config_runtime_int(const struct pv_config *cfg, const char *key, int64_t def)
{
	json_t *v = cfg->runtime ? json_object_get(cfg->runtime, key) : NULL;
	return json_is_integer(v) ? json_integer_value(v) : def;
}

const char *pv_config_runtime_str(const struct pv_config *cfg, const char *key)
{
	json_t *v = cfg->runtime ? json_object_get(cfg->runtime, key) : NULL;
	return json_string_value(v);
}

int pv_config_key_line(const char *text, const char *key)
{
	if (!text)
		return 0;
	cleanup_free char *quoted = pv_xasprintf("\"%s\"", key);
	const char *hit = strstr(text, quoted);
	if (!hit)
		return 0;
	int line = 1;
	for (const char *p = text; p < hit; p++)
		line += *p == '\n';
	return line;
}

static int key_error(pv_err_t **err, const char *name, const char *text, const char *key, const char *what)
{
	return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s:%d: key \"%s\": %s", name,
			  pv_config_key_line(text, key), key, what);
}

static int take_string(const char *name, const char *text, const char *key, json_t *v, char **dst,
		       pv_err_t **err)
{
	if (!json_is_string(v) || json_string_length(v) == 0)
		return key_error(err, name, text, key, "must be a non-empty string");
	free(*dst);
	*dst = pv_xstrdup(json_string_value(v));
	return 0;
}

static int take_section(const char *name, const char *text, const char *key, json_t *v, json_t **dst,
			pv_err_t **err)
{
	if (!json_is_object(v))
		return key_error(err, name, text, key, "must be an object");
	*dst = v;
	return 0;
}

static int stream_error(pv_err_t **err, const char *name, const char *text, const char *key, const char *what)
{
	return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s:%d: key \"streaming.%s\": %s", name,
			  pv_config_key_line(text, key), key, what);
}

static int stream_string(const char *name, const char *text, const char *key, json_t *v, char **dst, pv_err_t **err)
{
	if (!json_is_string(v) || json_string_length(v) == 0)
		return stream_error(err, name, text, key, "must be a non-empty string");
	free(*dst);
	*dst = pv_xstrdup(json_string_value(v));
	return 0;
}

/* "streaming": address, port, tls_cert, tls_key; anything else is refused. */
static int take_streaming(struct pv_config *c, const char *name, const char *text, json_t *v, pv_err_t **err)
{
	if (!json_is_object(v))
		return key_error(err, name, text, "streaming", "must be an object");
	const char *key;
	json_t *x;
	json_object_foreach(v, key, x) {
		int r = 0;
		if (!strcmp(key, "address")) {
			r = stream_string(name, text, key, x, &c->stream_address, err);
		} else if (!strcmp(key, "port")) {
			if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 65535)
				return stream_error(err, name, text, key, "must be an integer from 0 to 65535");
			c->stream_port = (int)json_integer_value(x);
		} else if (!strcmp(key, "tls_cert")) {
			r = stream_string(name, text, key, x, &c->stream_tls_cert, err);
		} else if (!strcmp(key, "tls_key")) {
			r = stream_string(name, text, key, x, &c->stream_tls_key, err);
		} else {
			return stream_error(err, name, text, key, "unknown key");
		}
		if (r < 0)
			return r;
	}
	if (!c->stream_tls_cert != !c->stream_tls_key)
		return stream_error(err, name, text, c->stream_tls_cert ? "tls_cert" : "tls_key",
				    "tls_cert and tls_key go together");
	return 0;
}

static int apply_key(struct pv_config *c, const char *name, const char *text, const char *key, json_t *v,
		     pv_err_t **err)
{
	if (!strcmp(key, "listen"))
		return take_string(name, text, key, v, &c->socket_path, err);
	if (!strcmp(key, "root"))
		return take_string(name, text, key, v, &c->root_dir, err);
	if (!strcmp(key, "state_dir"))
		return take_string(name, text, key, v, &c->state_dir, err);
	if (!strcmp(key, "log_level")) {
		if (!json_is_string(v) || pv_log_parse_level(json_string_value(v), &c->log_level) < 0)
			return key_error(err, name, text, key, "must be one of debug, info, warn, error");
		return 0;
	}
	if (!strcmp(key, "cgroup_driver")) {
		const char *s = json_string_value(v);
		if (!s || (strcmp(s, "cgroupfs") && strcmp(s, "systemd")))
			return key_error(err, name, text, key, "must be \"cgroupfs\" or \"systemd\"");
		return take_string(name, text, key, v, &c->cgroup_driver, err);
	}
	if (!strcmp(key, "max_concurrent_calls")) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
			return key_error(err, name, text, key, "must be an integer from 1 to 65536");
		c->max_concurrent_calls = (int)json_integer_value(v);
		return 0;
	}
	if (!strcmp(key, "image"))
		return take_section(name, text, key, v, &c->image, err);
	if (!strcmp(key, "runtime"))
		return take_section(name, text, key, v, &c->runtime, err);
	if (!strcmp(key, "network"))
		return take_section(name, text, key, v, &c->network, err);
	if (!strcmp(key, "streaming"))
		return take_streaming(c, name, text, v, err);
	return key_error(err, name, text, key, "unknown key");
}

int pv_config_parse(const char *name, const char *text, struct pv_config **out, pv_err_t **err)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s:%d:%d: invalid JSON: %s", name, jerr.line,
				  jerr.column, jerr.text);
	struct pv_config *c = config_defaults();
	c->root_json = root;
	c->source_text = pv_xstrdup(text);
	if (!json_is_object(root)) {
		pv_config_free(c);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: top level must be a JSON object", name);
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (apply_key(c, name, text, key, v, err) < 0) {
			pv_config_free(c);
			return -1;
		}
	}
	*out = c;
	return 0;
}

int pv_config_load(const char *path, int path_is_explicit, struct pv_config **out, pv_err_t **err)
{
	cleanup_free char *text = NULL;
	pv_err_t *rerr = NULL;
	if (pv_read_file(path, MAX_CONFIG_BYTES, &text, NULL, &rerr) < 0) {
		if (rerr->errnum == ENOENT && !path_is_explicit) {
			pv_err_free(rerr);
			*out = config_defaults();
			return 0;
		}
		pv_err_move(err, rerr);
		pv_err_prefix(err, "config");
		return -1;
	}
	struct pv_config *c;
	if (pv_config_parse(path, text, &c, err) < 0)
		return -1;
	c->config_path = pv_xstrdup(path);
	*out = c;
	return 0;
}
