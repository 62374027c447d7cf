/* Bounds on CRI requests: one walk over the decoded message, driven by its descriptors. */
#include "bounds.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/cri.pb-c.h"

enum kind {
	K_LEN,       /* length (and count) only */
	K_ID,        /* podvisor id or prefix */
	K_NAME,      /* a pod's or container's name or namespace: [A-Za-z0-9._-], a letter or digit first */
	K_UID,       /* [A-Za-z0-9._-] */
	K_ATTEMPT,   /* uint32 that fits an int32 */
	K_MAP,       /* map<string,string>: non-empty keys, max is the size of all entries */
};

struct rule {
	const char *msg;   /* message short name; NULL: any */
	const char *field; /* proto field name */
	enum kind kind;
	size_t max;        /* bytes of one string (of all entries for K_MAP); 0: CRI_MAX_STRING */
	size_t items;      /* entries of a repeated field; 0: CRI_MAX_ITEMS */
	size_t total;      /* bytes of all strings of a repeated field; 0: no limit beyond items * max */
};

static const struct rule rules[] = {
	{ NULL, "pod_sandbox_id", K_ID, CRI_MAX_ID, 0, 0 },
	{ NULL, "container_id", K_ID, CRI_MAX_ID, 0, 0 },
	{ "NamespaceOption", "target_id", K_ID, CRI_MAX_ID, 0, 0 },
	{ "PodSandboxFilter", "id", K_ID, CRI_MAX_ID, 0, 0 },
	{ "ContainerFilter", "id", K_ID, CRI_MAX_ID, 0, 0 },
	{ "PodSandboxStatsFilter", "id", K_ID, CRI_MAX_ID, 0, 0 },
	{ "ContainerStatsFilter", "id", K_ID, CRI_MAX_ID, 0, 0 },
	{ "PodSandboxMetadata", "name", K_NAME, CRI_MAX_DNS_SUBDOMAIN, 0, 0 },
	{ "PodSandboxMetadata", "namespace", K_NAME, CRI_MAX_DNS_SUBDOMAIN, 0, 0 },
	{ "PodSandboxMetadata", "uid", K_UID, CRI_MAX_UID, 0, 0 },
	{ "PodSandboxMetadata", "attempt", K_ATTEMPT, 0, 0, 0 },
	{ "ContainerMetadata", "name", K_NAME, CRI_MAX_DNS_SUBDOMAIN, 0, 0 },
	{ "ContainerMetadata", "attempt", K_ATTEMPT, 0, 0, 0 },
	{ NULL, "runtime_handler", K_LEN, CRI_MAX_DNS_SUBDOMAIN, 0, 0 },
	{ "ImageSpec", "image", K_LEN, CRI_MAX_IMAGE, 0, 0 },
	{ "ImageSpec", "user_specified_image", K_LEN, CRI_MAX_IMAGE, 0, 0 },
	{ "ImageSpec", "image_ref", K_LEN, CRI_MAX_IMAGE, 0, 0 },
	{ "PodSandboxConfig", "log_directory", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "ContainerConfig", "log_path", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "ContainerConfig", "working_dir", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "Mount", "container_path", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "Mount", "host_path", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "Mount", "image_sub_path", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "Device", "container_path", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "Device", "host_path", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "LinuxPodSandboxConfig", "cgroup_parent", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "LinuxContainerSecurityContext", "masked_paths", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "LinuxContainerSecurityContext", "readonly_paths", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "CheckpointContainerRequest", "location", K_LEN, CRI_MAX_PATH, 0, 0 },
	{ "ContainerConfig", "command", K_LEN, CRI_MAX_ARG, 0, 0 },
	{ "ContainerConfig", "args", K_LEN, CRI_MAX_ARG, 0, 0 },
	{ "ContainerConfig", "envs", K_LEN, 0, CRI_MAX_ENVS, 0 },
	{ "ContainerConfig", "mounts", K_LEN, 0, CRI_MAX_MOUNTS, 0 },
	{ "KeyValue", "value", K_LEN, CRI_MAX_ARG, 0, 0 },
	{ "ExecSyncRequest", "cmd", K_LEN, CRI_MAX_ARG, 0, CRI_MAX_PROCESS },
	{ "ExecRequest", "cmd", K_LEN, CRI_MAX_ARG, 0, CRI_MAX_PROCESS },
	{ "DNSConfig", "servers", K_LEN, CRI_MAX_DNS_SUBDOMAIN, CRI_MAX_DNS_SERVERS, 0 },
	{ "DNSConfig", "searches", K_LEN, CRI_MAX_DNS_SUBDOMAIN, CRI_MAX_DNS_SEARCHES, CRI_MAX_DNS_SEARCH_CHARS },
	{ NULL, "labels", K_MAP, CRI_MAX_LABELS, 0, 0 },
	{ NULL, "label_selector", K_MAP, CRI_MAX_LABELS, 0, 0 },
	{ NULL, "annotations", K_MAP, CRI_MAX_ANNOTATIONS, 0, 0 },
};

static const struct rule *find_rule(const ProtobufCMessageDescriptor *d, const char *field)
{
	for (size_t i = 0; i < PV_ARRAY_SIZE(rules); i++)
		if (!strcmp(rules[i].field, field) && (!rules[i].msg || !strcmp(rules[i].msg, d->short_name)))
			return &rules[i];
	return NULL;
}

/* ---- formats ------------------------------------------------------------------ */

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A label of n bytes at s: [a-z0-9]([-a-z0-9]*[a-z0-9])? */
static bool label_at(const char *s, size_t n)
{
	if (n == 0 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool cri_bounds_name(const char *s)
{
	/* Kubernetes' own names are DNS-1123; the CRI itself does not say, and its conformance
	 * suite uses capitals ("PodSandbox-for-test-stop-..."), as containerd and CRI-O accept.
	 * What matters here: nothing that could split CNI_ARGS (';', '=') or a path, no spaces
	 * or control characters, and a length bound. */
	if (!*s || !(((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

bool cri_bounds_dns_label(const char *s)
{
	size_t n = strlen(s);
	return n <= CRI_MAX_DNS_LABEL && label_at(s, n);
}

bool cri_bounds_dns_subdomain(const char *s)
{
	if (strlen(s) > CRI_MAX_DNS_SUBDOMAIN)
		return false;
	for (;;) {
		size_t n = strcspn(s, ".");
		if (!label_at(s, n))
			return false;
		if (!s[n])
			return true;
		s += n + 1;
	}
}

bool cri_bounds_id(const char *s)
{
	size_t n = strlen(s);
	return n <= CRI_MAX_ID && strspn(s, "0123456789abcdef") == n;
}

static bool uid_ok(const char *s)
{
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s);
}

/* ---- the walk ----------------------------------------------------------------- */

struct walk {
	char path[256]; /* field path from the request, cut if longer */
	size_t len;
	pv_err_t **err;
};

static size_t push(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t push(struct walk *w, const char *fmt, ...)
{
	size_t old = w->len;
	if (w->len < sizeof(w->path) - 1) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(w->path + w->len, sizeof(w->path) - w->len, fmt, ap);
		va_end(ap);
		w->len = n < 0 ? w->len : w->len + (size_t)n;
		if (w->len > sizeof(w->path) - 1)
			w->len = sizeof(w->path) - 1;
	}
	return old;
}

static void pop(struct walk *w, size_t old)
{
	w->len = old;
	w->path[old] = '\0';
}

static int bad(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = pv_xvasprintf(fmt, ap);
	va_end(ap);
	pv_err_set(w->err, PV_INVALID_ARGUMENT, EINVAL, "%s %s", w->path, why);
	free(why);
	return -1;
}

static int check_string(struct walk *w, const struct rule *r, const char *s)
{
	if (!s)
		return 0;
	size_t len = strlen(s), max = r && r->max ? r->max : CRI_MAX_STRING;
	if (len > max)
		return bad(w, "is %zu bytes long, more than %zu (\"%s\")", len, max, PV_ECHO(s));
	if (!r || !len)
		return 0;
	switch (r->kind) {
	case K_ID:
		if (!cri_bounds_id(s))
			return bad(w, "\"%s\" is not an id: at most 64 lowercase hex digits", PV_ECHO(s));
		break;
	case K_NAME:
		if (!cri_bounds_name(s))
			return bad(w, "\"%s\" may hold only letters, digits, '.', '_' and '-', and must start with a "
				      "letter or digit", PV_ECHO(s));
		break;
	case K_UID:
		if (!uid_ok(s))
			return bad(w, "\"%s\" may hold only letters, digits, '.', '_' and '-'", PV_ECHO(s));
		break;
	default:
		break;
	}
	return 0;
}

static int check_map(struct walk *w, const struct rule *r, ProtobufCMessage *const *entries, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		const struct pv_kv {
			ProtobufCMessage base;
			const char *key, *value;
		} *e = (const void *)entries[i];
		const char *key = e->key ? e->key : "", *value = e->value ? e->value : "";
		size_t kl = strlen(key);
		if (!kl)
			return bad(w, "has an empty key");
		if (kl > CRI_MAX_MAP_KEY)
			return bad(w, "key \"%s\" is %zu bytes long, more than %d", PV_ECHO(key), kl, CRI_MAX_MAP_KEY);
		total += kl + strlen(value);
		if (total > r->max)
			return bad(w, "holds more than %zu bytes of keys and values (at key \"%s\")", r->max,
				   PV_ECHO(key));
	}
	return 0;
}

static int check_msg(struct walk *w, const ProtobufCMessage *m, int depth);

static int check_repeated(struct walk *w, const ProtobufCFieldDescriptor *f, const struct rule *r,
			  const char *base)
{
	size_t n = *(const size_t *)(base + f->quantifier_offset);
	void *const *arr = *(void *const *)(base + f->offset);
	size_t items = r && r->items ? r->items : CRI_MAX_ITEMS;
	if (n > items)
		return bad(w, "has %zu entries, more than %zu", n, items);
	if (f->type == PROTOBUF_C_TYPE_STRING) {
		size_t total = 0;
		for (size_t i = 0; i < n; i++) {
			size_t old = push(w, "[%zu]", i);
			int rc = check_string(w, r, arr[i]);
			pop(w, old);
			if (rc < 0)
				return -1;
			total += strlen(arr[i]);
		}
		if (r && r->total && total > r->total)
			return bad(w, "holds %zu bytes, more than %zu", total, r->total);
	} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		if (r && r->kind == K_MAP)
			return check_map(w, r, (ProtobufCMessage *const *)arr, n);
		for (size_t i = 0; i < n; i++) {
			size_t old = push(w, "[%zu]", i);
			int rc = check_msg(w, arr[i], 0);
			pop(w, old);
			if (rc < 0)
				return -1;
		}
	}
	return 0;
}

static int check_field(struct walk *w, const ProtobufCFieldDescriptor *f, const struct rule *r, const char *base,
		       int depth)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return check_repeated(w, f, r, base);
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return check_string(w, r, *(char *const *)(base + f->offset));
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = (const void *)(base + f->offset);
		if (b->len > CRI_MAX_STRING)
			return bad(w, "is %zu bytes long, more than %u", b->len, CRI_MAX_STRING);
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
		return sub ? check_msg(w, sub, depth + 1) : 0;
	}
	case PROTOBUF_C_TYPE_UINT32:
		if (r && r->kind == K_ATTEMPT && *(const uint32_t *)(base + f->offset) > (uint32_t)CRI_MAX_ATTEMPT)
			return bad(w, "%u is more than %d (a restart count is an int32 in Kubernetes)",
				   *(const uint32_t *)(base + f->offset), CRI_MAX_ATTEMPT);
		return 0;
	default:
		return 0;
	}
}

/* command + args + envs of a container: what the guest's execve and the agent frame take. */
static int check_process(struct walk *w, const Runtime__V1__ContainerConfig *c)
{
	size_t total = 0;
	for (size_t i = 0; i < c->n_command; i++)
		total += strlen(c->command[i]) + 1;
	for (size_t i = 0; i < c->n_args; i++)
		total += strlen(c->args[i]) + 1;
	for (size_t i = 0; i < c->n_envs; i++)
		total += strlen(c->envs[i]->key ? c->envs[i]->key : "") +
			 strlen(c->envs[i]->value ? c->envs[i]->value : "") + 2;
	if (total > CRI_MAX_PROCESS)
		return bad(w, "(command, args and envs) holds %zu bytes, more than %u", total, CRI_MAX_PROCESS);
	return 0;
}

static int check_msg(struct walk *w, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	if (depth > 32) /* CRI messages nest a handful deep; nothing here recurses */
		return bad(w, "nests too deep");
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		/* A oneof member not set shares its storage with the one that is. */
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		size_t old = push(w, "%s%s", w->len ? "." : "", f->name);
		int rc = check_field(w, f, find_rule(d, f->name), base, depth);
		pop(w, old);
		if (rc < 0)
			return -1;
	}
	if (d == &runtime__v1__container_config__descriptor)
		return check_process(w, (const Runtime__V1__ContainerConfig *)m);
	return 0;
}

int cri_bounds_check(const ProtobufCMessage *req, pv_err_t **err)
{
	struct walk w = { .len = 0, .err = err };
	w.path[0] = '\0';
	return check_msg(&w, req, 0);
}
