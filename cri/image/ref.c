#include "ref.h"

#include <ctype.h>
#include <string.h>

#include "cleanup.h"
#include "digest.h"
#include "util.h"

/* One path component: [a-z0-9]+ separated by '.', '_', '__' or runs of '-'. */
static int component_valid(const char *s, size_t n)
{
	if (n == 0 || (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0])))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (islower(c) || isdigit(c))
			continue;
		if (c != '.' && c != '_' && c != '-')
			return 0;
		if (i + 1 == n)
			return 0;
		if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '_' || s[i + 1] == '-'))
			return 0;
		if (c == '_' && s[i + 1] != '_' && !isalnum((unsigned char)s[i + 1]))
			return 0;
		if (c == '_' && s[i + 1] == '_' && (i + 2 == n || s[i + 2] == '_'))
			return 0;
	}
	return 1;
}

static int tag_valid(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i]))
			return 0;
	return 1;
}

static int host_valid(const char *h)
{
	if (!*h)
		return 0;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p))
			return 0;
	return 1;
}

static int bad(pv_err_t **err, const char *s, const char *why)
{
	return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "invalid image reference \"%s\": %s", PV_ECHO(s), why);
}

int image_ref_parse(const char *s, struct image_ref *out, pv_err_t **err)
{
	if (!s || !*s)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "invalid image reference \"\": empty");
	if (strlen(s) > 1024)
		return bad(err, "(too long)", "longer than 1024 bytes");
	cleanup_free char *buf = pv_xstrdup(s);
	cleanup_free char *digest = NULL, *tag = NULL, *registry = NULL, *repo = NULL;

	char *at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		if (!image_digest_valid(at + 1))
			return bad(err, s, "digest must be sha256:<64 lowercase hex>");
		digest = pv_xstrdup(at + 1);
	}
	char *slash = strrchr(buf, '/');
	char *colon = strrchr(slash ? slash : buf, ':');
	if (colon) {
		*colon = '\0';
		if (!tag_valid(colon + 1))
			return bad(err, s, "invalid tag");
		tag = pv_xstrdup(colon + 1);
	}
	char *name = buf;
	char *first_slash = strchr(name, '/');
	if (first_slash) {
		size_t hl = first_slash - name;
		int is_host = memchr(name, '.', hl) || memchr(name, ':', hl) ||
			      (hl == 9 && !memcmp(name, "localhost", 9)) || hl == 0 ||
			      memchr(name, '[', hl);
		for (size_t i = 0; i < hl && !is_host; i++)
			if (isupper((unsigned char)name[i]))
				is_host = 1;
		if (is_host) {
			registry = pv_xstrndup(name, hl);
			name = first_slash + 1;
		}
	}
	if (!registry)
		registry = pv_xstrdup("docker.io");
	if (!strcmp(registry, "index.docker.io") || !strcmp(registry, "registry-1.docker.io")) {
		free(registry);
		registry = pv_xstrdup("docker.io");
	}
	if (!host_valid(registry))
		return bad(err, s, "invalid registry host");
	if (!strcmp(registry, "docker.io") && !strchr(name, '/'))
		repo = pv_xasprintf("library/%s", name);
	else
		repo = pv_xstrdup(name);
	if (strlen(repo) > 255)
		return bad(err, s, "repository name too long");
	for (const char *p = repo;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!component_valid(p, n))
			return bad(err, s, "invalid repository name (lowercase letters, digits and separators only)");
		if (!e)
			break;
		p = e + 1;
	}
	if (!tag && !digest)
		tag = pv_xstrdup("latest");
	out->registry = steal_pointer(&registry);
	out->repo = steal_pointer(&repo);
	out->tag = steal_pointer(&tag);
	out->digest = steal_pointer(&digest);
	return 0;
}

void image_ref_free(struct image_ref *r)
{
	if (!r)
		return;
	free(r->registry);
	free(r->repo);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

char *image_ref_name(const struct image_ref *r)
{
	return pv_xasprintf("%s/%s", r->registry, r->repo);
}

char *image_ref_tagged(const struct image_ref *r)
{
	return r->tag ? pv_xasprintf("%s/%s:%s", r->registry, r->repo, r->tag) : NULL;
}

char *image_ref_digested(const struct image_ref *r, const char *digest)
{
	return pv_xasprintf("%s/%s@%s", r->registry, r->repo, digest);
}
