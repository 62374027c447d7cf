#include "platform.h"

#include <string.h>

#include "cleanup.h"
#include "util.h"

static const char *norm_arch(const char *a)
{
	if (!strcmp(a, "x86_64") || !strcmp(a, "x86-64"))
		return "amd64";
	if (!strcmp(a, "aarch64"))
		return "arm64";
	return a;
}

static void copy_field(char *dst, const char *src)
{
	snprintf(dst, IMAGE_PLATFORM_FIELD, "%s", src ? src : "");
}

void image_platform_set(struct image_platform *p, const char *os, const char *arch, const char *variant)
{
	copy_field(p->os, os);
	copy_field(p->arch, arch ? norm_arch(arch) : NULL);
	copy_field(p->variant, variant);
}

static bool field_ok(const char *s, size_t n)
{
	if (n == 0 || n >= IMAGE_PLATFORM_FIELD)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

int image_platform_parse(const char *s, struct image_platform *out, pv_err_t **err)
{
	const char *f[3] = { 0 };
	size_t len[3] = { 0 }, n = 0;
	const char *p = s ? s : "";
	while (n < 3) {
		const char *slash = strchr(p, '/');
		f[n] = p;
		len[n] = slash ? (size_t)(slash - p) : strlen(p);
		n++;
		if (!slash)
			break;
		p = slash + 1;
		if (n == 3)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "platform \"%s\": want os/arch[/variant]", s);
	}
	if (n < 2)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "platform \"%s\": want os/arch[/variant]", s);
	for (size_t i = 0; i < n; i++)
		if (!field_ok(f[i], len[i]))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "platform \"%s\": bad field", s);
	char buf[3][IMAGE_PLATFORM_FIELD] = { "", "", "" };
	for (size_t i = 0; i < n; i++)
		memcpy(buf[i], f[i], len[i]);
	image_platform_set(out, buf[0], buf[1], buf[2]);
	return 0;
}

const char *image_platform_format(const struct image_platform *p, char *out)
{
	snprintf(out, IMAGE_PLATFORM_STR, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
	return out;
}

/* arm64 without a variant means v8, so "linux/arm64" and "linux/arm64/v8" are the same platform. */
static const char *eff_variant(const struct image_platform *p)
{
	if (!p->variant[0] && !strcmp(p->arch, "arm64"))
		return "v8";
	return p->variant;
}

bool image_platform_match(const struct image_platform *want, const struct image_platform *have)
{
	if (strcmp(want->os, have->os) || strcmp(want->arch, have->arch))
		return false;
	const char *wv = eff_variant(want), *hv = eff_variant(have);
	return !*wv || !*hv || !strcmp(wv, hv);
}

int image_platform_find(const struct image_platform *want, size_t n, const struct image_platform *have)
{
	for (size_t i = 0; i < n; i++)
		if (image_platform_match(&want[i], have))
			return (int)i;
	return -1;
}

char *image_platforms_describe(const struct image_platform *want, size_t n)
{
	char *out = pv_xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char b[IMAGE_PLATFORM_STR];
		char *next = pv_xasprintf("%s%s%s", out, i ? " or " : "", image_platform_format(&want[i], b));
		free(out);
		out = next;
	}
	return out;
}

static char *index_platforms(const struct image_doc *idx)
{
	char *out = pv_xstrdup("");
	for (size_t i = 0; i < idx->n_manifests; i++) {
		const struct image_descriptor *m = &idx->manifests[i];
		char *next = pv_xasprintf("%s%s%s/%s%s%s", out, i ? ", " : "", m->os ? m->os : "?",
					  m->arch ? m->arch : "?", m->variant ? "/" : "", m->variant ? m->variant : "");
		free(out);
		out = next;
	}
	return out;
}

static bool is_image_manifest(const struct image_descriptor *m)
{
	return !strcmp(m->media_type, MT_OCI_MANIFEST) || !strcmp(m->media_type, MT_DOCKER_MANIFEST);
}

int image_doc_select_platforms(const struct image_doc *idx, const struct image_platform *want, size_t n,
			       const struct image_descriptor **out, pv_err_t **err)
{
	for (size_t w = 0; w < n; w++) {
		const struct image_descriptor *best = NULL;
		for (size_t i = 0; i < idx->n_manifests; i++) {
			const struct image_descriptor *m = &idx->manifests[i];
			if (!m->os || !m->arch || !is_image_manifest(m))
				continue;
			struct image_platform have;
			image_platform_set(&have, m->os, m->arch, m->variant);
			if (!image_platform_match(&want[w], &have))
				continue;
			/* An exact variant beats an entry that leaves it open. */
			if (!best || (want[w].variant[0] && m->variant && !strcmp(m->variant, want[w].variant)))
				best = m;
		}
		if (best) {
			*out = best;
			return 0;
		}
	}
	cleanup_free char *wanted = image_platforms_describe(want, n);
	cleanup_free char *has = index_platforms(idx);
	return pv_err_set(err, PV_NOT_FOUND, ENOENT, "no manifest for platform %s in index (has: %s)", wanted,
			  *has ? has : "nothing");
}
