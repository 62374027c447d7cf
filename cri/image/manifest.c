#include "manifest.h"

#include <jansson.h>
#include <string.h>

#include "cleanup.h"
#include "digest.h"
#include "util.h"

static void json_decref_p(json_t **j)
{
	json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(json_decref_p)))

void image_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void desc_free(struct image_descriptor *d)
{
	free(d->media_type);
	free(d->digest);
	free(d->os);
	free(d->arch);
	free(d->variant);
	memset(d, 0, sizeof(*d));
}

void image_doc_free(struct image_doc *d)
{
	if (!d)
		return;
	desc_free(&d->config);
	for (size_t i = 0; i < d->n_layers; i++)
		desc_free(&d->layers[i]);
	for (size_t i = 0; i < d->n_manifests; i++)
		desc_free(&d->manifests[i]);
	free(d->layers);
	free(d->manifests);
	free(d->media_type);
	memset(d, 0, sizeof(*d));
}

static const char *opt_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int layer_compression(const char *mt, enum image_compression *out)
{
	static const struct {
		const char *mt;
		enum image_compression comp;
	} known[] = {
		{ "application/vnd.oci.image.layer.v1.tar", IMAGE_COMP_NONE },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", IMAGE_COMP_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", IMAGE_COMP_ZSTD },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", IMAGE_COMP_NONE },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", IMAGE_COMP_GZIP },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", IMAGE_COMP_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", IMAGE_COMP_GZIP },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", IMAGE_COMP_GZIP },
		{ "application/vnd.docker.image.rootfs.diff.tar", IMAGE_COMP_NONE },
	};
	for (size_t i = 0; i < PV_ARRAY_SIZE(known); i++)
		if (!strcmp(mt, known[i].mt)) {
			*out = known[i].comp;
			return 0;
		}
	return -1;
}

static int desc_parse(json_t *j, const char *what, struct image_descriptor *out, pv_err_t **err)
{
	if (!json_is_object(j))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: not an object", what);
	const char *mt = opt_str(j, "mediaType");
	const char *dg = opt_str(j, "digest");
	json_t *sz = json_object_get(j, "size");
	if (!mt)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: missing mediaType", what);
	if (!image_digest_valid(dg))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: missing or unsupported digest \"%s\"",
				  what, dg ? dg : "");
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: missing or negative size", what);
	out->media_type = pv_xstrdup(mt);
	out->digest = pv_xstrdup(dg);
	out->size = json_integer_value(sz);
	json_t *plat = json_object_get(j, "platform");
	if (json_is_object(plat)) {
		const char *os = opt_str(plat, "os"), *arch = opt_str(plat, "architecture");
		const char *var = opt_str(plat, "variant");
		out->os = os ? pv_xstrdup(os) : NULL;
		out->arch = arch ? pv_xstrdup(arch) : NULL;
		out->variant = var ? pv_xstrdup(var) : NULL;
	}
	return 0;
}

static int parse_manifest(json_t *root, struct image_doc *d, pv_err_t **err)
{
	json_t *cfg = json_object_get(root, "config");
	json_t *layers = json_object_get(root, "layers");
	if (desc_parse(cfg, "manifest config", &d->config, err) < 0)
		return -1;
	if (strcmp(d->config.media_type, MT_OCI_CONFIG) && strcmp(d->config.media_type, MT_DOCKER_CONFIG))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest config: unsupported media type \"%s\"",
				  d->config.media_type);
	if (d->config.size > IMAGE_MAX_CONFIG)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest config: size %lld too large",
				  (long long)d->config.size);
	if (!json_is_array(layers))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest: missing layers array");
	size_t n = json_array_size(layers);
	if (n > 1024)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest: %zu layers is too many", n);
	d->layers = pv_xcalloc(n, sizeof(*d->layers));
	for (size_t i = 0; i < n; i++) {
		char what[32];
		snprintf(what, sizeof(what), "manifest layer %zu", i);
		if (desc_parse(json_array_get(layers, i), what, &d->layers[d->n_layers], err) < 0)
			return -1;
		struct image_descriptor *l = &d->layers[d->n_layers++];
		if (layer_compression(l->media_type, &l->comp) < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: unsupported media type \"%s\"", what,
					  l->media_type);
	}
	return 0;
}

static int parse_index(json_t *root, struct image_doc *d, pv_err_t **err)
{
	json_t *ms = json_object_get(root, "manifests");
	if (!json_is_array(ms))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "index: missing manifests array");
	size_t n = json_array_size(ms);
	if (n > 4096)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "index: %zu manifests is too many", n);
	d->manifests = pv_xcalloc(n, sizeof(*d->manifests));
	for (size_t i = 0; i < n; i++) {
		char what[32];
		snprintf(what, sizeof(what), "index entry %zu", i);
		if (desc_parse(json_array_get(ms, i), what, &d->manifests[d->n_manifests++], err) < 0)
			return -1;
	}
	return 0;
}

int image_doc_parse(const char *buf, size_t len, const char *content_type, struct image_doc *out,
		    pv_err_t **err)
{
	json_error_t jerr;
	cleanup_json json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest is not valid JSON: %s (line %d)",
				  jerr.text, jerr.line);
	if (!json_is_object(root))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest is not a JSON object");
	json_t *sv = json_object_get(root, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "manifest schemaVersion must be 2");
	const char *mt = opt_str(root, "mediaType");
	char ctbuf[128] = "";
	if (!mt && content_type) {
		snprintf(ctbuf, sizeof(ctbuf), "%s", content_type);
		ctbuf[strcspn(ctbuf, "; \t")] = '\0';
		mt = ctbuf;
	}
	struct image_doc d = { 0 };
	int r;
	if (mt && (!strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST))) {
		d.kind = IMAGE_DOC_MANIFEST;
		r = parse_manifest(root, &d, err);
	} else if (mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST))) {
		d.kind = IMAGE_DOC_INDEX;
		r = parse_index(root, &d, err);
	} else if (!mt || !*mt || !strcmp(mt, "application/json") || !strcmp(mt, "application/octet-stream")) {
		/* OCI allows omitting mediaType: tell them apart by shape. */
		if (json_object_get(root, "manifests")) {
			d.kind = IMAGE_DOC_INDEX;
			mt = MT_OCI_INDEX;
			r = parse_index(root, &d, err);
		} else {
			d.kind = IMAGE_DOC_MANIFEST;
			mt = MT_OCI_MANIFEST;
			r = parse_manifest(root, &d, err);
		}
	} else {
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "unsupported manifest media type \"%s\"", mt);
	}
	if (r < 0) {
		image_doc_free(&d);
		return -1;
	}
	d.media_type = pv_xstrdup(mt);
	*out = d;
	return 0;
}

static int streq0(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

int image_doc_select(const struct image_doc *idx, const char *os, const char *arch, const char *variant,
		     const struct image_descriptor **out, pv_err_t **err)
{
	const struct image_descriptor *best = NULL;
	for (size_t i = 0; i < idx->n_manifests; i++) {
		const struct image_descriptor *m = &idx->manifests[i];
		if (!streq0(m->os, os) || !streq0(m->arch, arch))
			continue;
		if (strcmp(m->media_type, MT_OCI_MANIFEST) && strcmp(m->media_type, MT_DOCKER_MANIFEST))
			continue;
		if (variant && m->variant && strcmp(variant, m->variant))
			continue;
		if (!best || (variant && streq0(m->variant, variant) && !streq0(best->variant, variant)))
			best = m;
	}
	if (!best) {
		size_t cap = 64, used = 0;
		cleanup_free char *have = pv_xcalloc(1, cap);
		for (size_t i = 0; i < idx->n_manifests; i++) {
			const struct image_descriptor *m = &idx->manifests[i];
			cleanup_free char *p = pv_xasprintf("%s%s/%s%s%s", used ? ", " : "", m->os ? m->os : "?",
							    m->arch ? m->arch : "?", m->variant ? "/" : "",
							    m->variant ? m->variant : "");
			size_t pl = strlen(p);
			if (used + pl + 1 > cap) {
				cap = (used + pl + 1) * 2;
				have = pv_xrealloc(have, cap);
			}
			memcpy(have + used, p, pl + 1);
			used += pl;
		}
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "no manifest for platform %s/%s%s%s in index (has: %s)", os,
				  arch, variant ? "/" : "", variant ? variant : "", used ? have : "nothing");
	}
	*out = best;
	return 0;
}

static int strv_from_json(json_t *a, const char *what, char ***out, pv_err_t **err)
{
	if (!a || json_is_null(a)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_array(a))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config: %s is not an array", what);
	size_t n = json_array_size(a);
	char **v = pv_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(a, i);
		if (!json_is_string(s)) {
			image_strv_free(v);
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config: %s[%zu] is not a string",
					  what, i);
		}
		v[i] = pv_xstrdup(json_string_value(s));
	}
	*out = v;
	return 0;
}

void image_config_free(struct image_config *c)
{
	if (!c)
		return;
	free(c->os);
	free(c->arch);
	free(c->user);
	free(c->workdir);
	free(c->stop_signal);
	image_strv_free(c->env);
	image_strv_free(c->entrypoint);
	image_strv_free(c->cmd);
	image_strv_free(c->exposed_ports);
	image_strv_free(c->diff_ids);
	memset(c, 0, sizeof(*c));
}

static char *dup_opt(json_t *o, const char *key)
{
	const char *s = opt_str(o, key);
	return s && *s ? pv_xstrdup(s) : NULL;
}

int image_config_parse(const char *buf, size_t len, struct image_config *out, pv_err_t **err)
{
	json_error_t jerr;
	cleanup_json json_t *root = json_loadb(buf, len, 0, &jerr);
	if (!root)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config is not valid JSON: %s (line %d)",
				  jerr.text, jerr.line);
	if (!json_is_object(root))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config is not a JSON object");
	struct image_config c = { 0 };
	c.os = dup_opt(root, "os");
	c.arch = dup_opt(root, "architecture");
	json_t *cfg = json_object_get(root, "config");
	int r = 0;
	if (json_is_object(cfg)) {
		c.user = dup_opt(cfg, "User");
		c.workdir = dup_opt(cfg, "WorkingDir");
		c.stop_signal = dup_opt(cfg, "StopSignal");
		if (strv_from_json(json_object_get(cfg, "Env"), "Env", &c.env, err) < 0 ||
		    strv_from_json(json_object_get(cfg, "Entrypoint"), "Entrypoint", &c.entrypoint, err) < 0 ||
		    strv_from_json(json_object_get(cfg, "Cmd"), "Cmd", &c.cmd, err) < 0)
			r = -1;
		json_t *ports = json_object_get(cfg, "ExposedPorts");
		if (r == 0 && json_is_object(ports)) {
			c.exposed_ports = pv_xcalloc(json_object_size(ports) + 1, sizeof(char *));
			size_t i = 0;
			const char *k;
			json_t *v;
			json_object_foreach(ports, k, v) c.exposed_ports[i++] = pv_xstrdup(k);
		}
	} else if (cfg && !json_is_null(cfg)) {
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config: config is not an object");
	}
	json_t *rootfs = json_object_get(root, "rootfs");
	json_t *ids = json_is_object(rootfs) ? json_object_get(rootfs, "diff_ids") : NULL;
	if (r == 0 && !json_is_array(ids))
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config: missing rootfs.diff_ids");
	if (r == 0 && strv_from_json(ids, "rootfs.diff_ids", &c.diff_ids, err) < 0)
		r = -1;
	if (r == 0) {
		for (char **p = c.diff_ids; *p; p++, c.n_diff_ids++)
			if (!image_digest_valid(*p)) {
				r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					       "image config: diff_id \"%s\" is not a sha256 digest", *p);
				break;
			}
	}
	if (r < 0) {
		image_config_free(&c);
		return -1;
	}
	*out = c;
	return 0;
}

void image_chain_id(char *const *diff_ids, size_t n, char *out)
{
	char cur[IMAGE_DIGEST_LEN + 1] = "";
	for (size_t i = 0; i < n; i++) {
		if (i == 0) {
			snprintf(cur, sizeof(cur), "%s", diff_ids[0]);
			continue;
		}
		cleanup_free char *s = pv_xasprintf("%s %s", cur, diff_ids[i]);
		image_digest_buf(s, strlen(s), cur);
	}
	if (n == 0)
		image_digest_buf("", 0, cur);
	memcpy(out, cur, IMAGE_DIGEST_LEN + 1);
}

void image_host_platform(const char **os, const char **arch, const char **variant)
{
	*os = "linux";
	*variant = NULL;
#if defined(__x86_64__)
	*arch = "amd64";
#elif defined(__aarch64__)
	*arch = "arm64";
	*variant = "v8";
#elif defined(__i386__)
	*arch = "386";
#elif defined(__arm__)
	*arch = "arm";
	*variant = "v7";
#elif defined(__riscv) && __riscv_xlen == 64
	*arch = "riscv64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	*arch = "ppc64le";
#elif defined(__s390x__)
	*arch = "s390x";
#else
	*arch = "unknown";
#endif
}
