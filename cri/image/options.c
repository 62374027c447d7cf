#include "options.h"

#include <stdarg.h>
#include <string.h>

#include "cleanup.h"
#include "manifest.h"
#include "util.h"

static int bad(pv_err_t **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(pv_err_t **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = pv_xvasprintf(fmt, ap);
	va_end(ap);
	return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s", msg);
}

static int url_ok(const char *u)
{
	return (pv_str_has_prefix(u, "http://") && u[7]) || (pv_str_has_prefix(u, "https://") && u[8]);
}

static int parse_platform(const char *s, struct image_options *o)
{
	cleanup_free char *buf = pv_xstrdup(s);
	char *save = NULL;
	char *os = strtok_r(buf, "/", &save), *arch = strtok_r(NULL, "/", &save);
	char *var = strtok_r(NULL, "/", &save);
	if (!os || !arch || strtok_r(NULL, "/", &save))
		return -1;
	free(o->os);
	free(o->arch);
	free(o->variant);
	o->os = pv_xstrdup(os);
	o->arch = pv_xstrdup(arch);
	o->variant = var ? pv_xstrdup(var) : NULL;
	return 0;
}

static int parse_insecure(json_t *v, struct image_options *o, pv_err_t **err)
{
	if (!json_is_array(v))
		return bad(err, "image.insecure_registries: want an array of hosts");
	size_t n = json_array_size(v);
	o->insecure = pv_xrealloc(o->insecure, (n + 1) * sizeof(char *));
	o->insecure[0] = NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *h = json_array_get(v, i);
		if (!json_is_string(h) || !*json_string_value(h))
			return bad(err, "image.insecure_registries: want an array of hosts");
		o->insecure[i] = pv_xstrdup(json_string_value(h));
		o->insecure[i + 1] = NULL;
	}
	return 0;
}

static int parse_mirrors(json_t *v, struct image_options *o, pv_err_t **err)
{
	if (!json_is_object(v))
		return bad(err, "image.mirrors: want an object of registry -> [URL...]");
	o->mirrors = pv_xcalloc(json_object_size(v) + 1, sizeof(*o->mirrors));
	const char *reg;
	json_t *urls;
	json_object_foreach(v, reg, urls) {
		size_t n = json_array_size(urls);
		if (!json_is_array(urls) || n == 0)
			return bad(err, "image.mirrors[\"%s\"]: want a non-empty array of URLs", reg);
		struct image_mirror *m = &o->mirrors[o->n_mirrors++];
		m->registry = pv_xstrdup(reg);
		m->urls = pv_xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			json_t *u = json_array_get(urls, i);
			if (!json_is_string(u) || !url_ok(json_string_value(u)))
				return bad(err, "image.mirrors[\"%s\"]: \"%s\" is not an http(s):// URL", reg,
					   json_is_string(u) ? json_string_value(u) : "?");
			m->urls[i] = pv_xstrdup(json_string_value(u));
		}
	}
	return 0;
}

int image_options_parse(json_t *cfg, struct image_options *out, pv_err_t **err)
{
	struct image_options o = { .timeout_s = 30,
				   .max_retries = 3,
				   .max_unpacked_bytes = IMAGE_DEFAULT_MAX_UNPACKED,
				   .max_unpacked_entries = IMAGE_DEFAULT_MAX_ENTRIES };
	const char *os, *arch, *variant;
	image_host_platform(&os, &arch, &variant);
	o.os = pv_xstrdup(os);
	o.arch = pv_xstrdup(arch);
	o.variant = variant ? pv_xstrdup(variant) : NULL;
	o.insecure = pv_xcalloc(1, sizeof(char *));
	int r = 0;
	if (cfg && !json_is_object(cfg) && !json_is_null(cfg))
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image: must be an object");
	const char *key;
	json_t *v;
	if (json_is_object(cfg))
		json_object_foreach(cfg, key, v) {
			if (r < 0)
				break;
			if (!strcmp(key, "platform")) {
				if (!json_is_string(v) || parse_platform(json_string_value(v), &o) < 0)
					r = bad(err, "image.platform: want \"os/arch[/variant]\"");
			} else if (!strcmp(key, "timeout_seconds")) {
				if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 3600)
					r = bad(err, "image.timeout_seconds: want an integer in 1..3600");
				else
					o.timeout_s = json_integer_value(v);
			} else if (!strcmp(key, "max_retries")) {
				if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10)
					r = bad(err, "image.max_retries: want an integer in 0..10");
				else
					o.max_retries = json_integer_value(v);
			} else if (!strcmp(key, "max_unpacked_bytes")) {
				if (!json_is_integer(v) || json_integer_value(v) <= 0)
					r = bad(err, "image.max_unpacked_bytes: want a positive integer (bytes)");
				else
					o.max_unpacked_bytes = (uint64_t)json_integer_value(v);
			} else if (!strcmp(key, "max_unpacked_entries")) {
				if (!json_is_integer(v) || json_integer_value(v) <= 0)
					r = bad(err, "image.max_unpacked_entries: want a positive integer");
				else
					o.max_unpacked_entries = (uint64_t)json_integer_value(v);
			} else if (!strcmp(key, "insecure_registries")) {
				r = parse_insecure(v, &o, err);
			} else if (!strcmp(key, "mirrors")) {
				r = parse_mirrors(v, &o, err);
			} else {
				r = bad(err, "image: unknown key \"%s\"", key);
			}
		}
	if (r < 0) {
		image_options_free(&o);
		return r;
	}
	*out = o;
	return 0;
}

void image_options_free(struct image_options *o)
{
	free(o->os);
	free(o->arch);
	free(o->variant);
	for (size_t i = 0; i < o->n_mirrors; i++) {
		free(o->mirrors[i].registry);
		image_strv_free(o->mirrors[i].urls);
	}
	free(o->mirrors);
	image_strv_free(o->insecure);
	memset(o, 0, sizeof(*o));
}

static int is_local(const char *host)
{
	static const char *const local[] = { "localhost", "127.", "[::1]" };
	for (size_t i = 0; i < PV_ARRAY_SIZE(local); i++)
		if (pv_str_has_prefix(host, local[i])) {
			char c = host[strlen(local[i])];
			if (local[i][strlen(local[i]) - 1] == '.' || c == '\0' || c == ':')
				return 1;
		}
	return 0;
}

char **image_options_endpoints(const struct image_options *o, const char *registry)
{
	size_t n = 0;
	char **v = pv_xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < o->n_mirrors; i++) {
		if (strcmp(o->mirrors[i].registry, registry))
			continue;
		for (char **u = o->mirrors[i].urls; *u; u++) {
			v = pv_xrealloc(v, (n + 2) * sizeof(char *));
			v[n++] = pv_xstrdup(*u);
		}
	}
	int insecure = is_local(registry);
	for (char **h = o->insecure; *h; h++)
		if (!strcmp(*h, registry))
			insecure = 1;
	const char *host = strcmp(registry, "docker.io") ? registry : "registry-1.docker.io";
	v = pv_xrealloc(v, (n + 2) * sizeof(char *));
	v[n++] = pv_xasprintf("%s://%s", insecure ? "http" : "https", host);
	v[n] = NULL;
	return v;
}
