/*
 * A container's seccomp filter: the CRI SecurityProfile to the agent's Seccomp message.
 * Unconfined (or no profile) is no filter, RuntimeDefault is podvisor's default profile
 * (seccomp_default.c), Localhost is a JSON file on the node in the OCI runtime spec's
 * linux.seccomp format, read and checked here at CreateContainer; the agent compiles it
 * with libseccomp. A bad profile is INVALID_ARGUMENT naming the file and what is wrong.
 */
#include "spec.h"
#include "cleanup.h"
#include "seccomp_names.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PROFILE_MAX (1 << 20)

struct loader {
	struct cri_arena *a;
	const char *path;
	pv_err_t **err;
};

static int bad(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct loader *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = pv_xvasprintf(fmt, ap);
	va_end(ap);
	return pv_err_set(l->err, PV_INVALID_ARGUMENT, EINVAL, "seccomp profile %s: %s", l->path, msg);
}

/* An optional array of strings, each checked by ok (NULL: any). */
static int strings(struct loader *l, json_t *obj, const char *key, const char *where, int (*ok)(const char *),
		   char ***out, size_t *n)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	*n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(l, "%s%s must be an array of strings", where, key);
	size_t len = json_array_size(v);
	*out = cri_arena_alloc(l->a, (len ? len : 1) * sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		const char *s = json_string_value(json_array_get(v, i));
		if (!s)
			return bad(l, "%s%s[%zu] is not a string", where, key, i);
		if (ok && !ok(s))
			return bad(l, "%s%s[%zu]: unknown value \"%s\"", where, key, i, s);
		(*out)[(*n)++] = cri_arena_strdup(l->a, s);
	}
	return 0;
}

static int arch_ok(const char *s)
{
	return pv_seccomp_arch(s) >= 0;
}

static int flag_ok(const char *s)
{
	return pv_seccomp_flag(s) != 0;
}

/* An action name the agent can apply (SCMP_ACT_NOTIFY needs a listener we do not run). */
static int action(struct loader *l, json_t *obj, const char *key, const char *where, char **out)
{
	const char *s = json_string_value(json_object_get(obj, key));
	if (!s)
		return bad(l, "%s%s is required (a string such as \"SCMP_ACT_ERRNO\")", where, key);
	int act = pv_seccomp_action(s);
	if (act < 0)
		return bad(l, "%s%s: unknown action \"%s\"", where, key, s);
	if (act == PV_SCMP_ACT_NOTIFY)
		return bad(l, "%s%s: SCMP_ACT_NOTIFY needs a seccomp agent, which podvisor does not run", where, key);
	*out = cri_arena_strdup(l->a, s);
	return 0;
}

static int errno_ret(struct loader *l, json_t *obj, const char *key, const char *where, uint32_t *out, int *has)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 4095)
		return bad(l, "%s%s must be an errno number 0..4095", where, key);
	*out = (uint32_t)json_integer_value(v);
	*has = 1;
	return 0;
}

static int u64(struct loader *l, json_t *obj, const char *key, const char *where, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return bad(l, "%s%s must be a non-negative integer", where, key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int one_arg(struct loader *l, json_t *j, const char *where, Podvisor__Agent__SeccompArg **out)
{
	if (!json_is_object(j))
		return bad(l, "%s is not an object", where);
	Podvisor__Agent__SeccompArg *arg = cri_arena_alloc(l->a, sizeof(*arg));
	podvisor__agent__seccomp_arg__init(arg);
	cleanup_free char *w = pv_xasprintf("%s.", where);
	json_t *idx = json_object_get(j, "index");
	if (!json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) > 5)
		return bad(l, "%sindex must be 0..5", w);
	arg->index = (uint32_t)json_integer_value(idx);
	const char *op = json_string_value(json_object_get(j, "op"));
	if (!op || pv_seccomp_op(op) < 0)
		return bad(l, "%sop must be one of SCMP_CMP_NE, _LT, _LE, _EQ, _GE, _GT, _MASKED_EQ", w);
	arg->op = cri_arena_strdup(l->a, op);
	if (u64(l, j, "value", w, &arg->value) < 0 || u64(l, j, "valueTwo", w, &arg->value_two) < 0)
		return -1;
	*out = arg;
	return 0;
}

static int name_ok(const char *s)
{
	return pv_seccomp_name_ok(s);
}

static int one_rule(struct loader *l, json_t *j, size_t i, Podvisor__Agent__SeccompRule **out)
{
	char where[48];
	snprintf(where, sizeof(where), "syscalls[%zu].", i);
	if (!json_is_object(j))
		return bad(l, "syscalls[%zu] is not an object", i);
	Podvisor__Agent__SeccompRule *r = cri_arena_alloc(l->a, sizeof(*r));
	podvisor__agent__seccomp_rule__init(r);
	if (strings(l, j, "names", where, name_ok, &r->names, &r->n_names) < 0)
		return -1;
	if (!r->n_names || r->n_names > 1024)
		return bad(l, "%snames must list 1..1024 syscalls", where);
	int has = 0;
	if (action(l, j, "action", where, &r->action) < 0 || errno_ret(l, j, "errnoRet", where, &r->errno_ret, &has) < 0)
		return -1;
	r->has_errno_ret = has;
	json_t *args = json_object_get(j, "args");
	if (args && !json_is_null(args)) {
		if (!json_is_array(args) || json_array_size(args) > 6)
			return bad(l, "%sargs must be an array of at most 6 conditions", where);
		r->args = cri_arena_alloc(l->a, (json_array_size(args) + 1) * sizeof(*r->args));
		for (size_t k = 0; k < json_array_size(args); k++) {
			char aw[96];
			snprintf(aw, sizeof(aw), "%sargs[%zu]", where, k);
			if (one_arg(l, json_array_get(args, k), aw, &r->args[r->n_args++]) < 0)
				return -1;
		}
	}
	*out = r;
	return 0;
}

static int parse_profile(struct loader *l, json_t *root, Podvisor__Agent__Seccomp *s)
{
	if (!json_is_object(root))
		return bad(l, "not a JSON object");
	const char *listener = json_string_value(json_object_get(root, "listenerPath"));
	if (listener && *listener)
		return bad(l, "listenerPath: seccomp notify agents are not supported");
	int has = 0;
	if (action(l, root, "defaultAction", "", &s->default_action) < 0 ||
	    errno_ret(l, root, "defaultErrnoRet", "", &s->default_errno, &has) < 0 ||
	    strings(l, root, "architectures", "", arch_ok, &s->architectures, &s->n_architectures) < 0 ||
	    strings(l, root, "flags", "", flag_ok, &s->flags, &s->n_flags) < 0)
		return -1;
	s->has_default_errno = has;
	json_t *calls = json_object_get(root, "syscalls");
	if (!calls || json_is_null(calls))
		return 0;
	if (!json_is_array(calls))
		return bad(l, "syscalls must be an array");
	if (json_array_size(calls) > 4096)
		return bad(l, "more than 4096 syscall rules");
	s->syscalls = cri_arena_alloc(l->a, (json_array_size(calls) + 1) * sizeof(*s->syscalls));
	for (size_t i = 0; i < json_array_size(calls); i++)
		if (one_rule(l, json_array_get(calls, i), i, &s->syscalls[s->n_syscalls++]) < 0)
			return -1;
	return 0;
}

int spec_seccomp_parse(struct cri_arena *a, const char *name, const char *text, size_t len,
		       Podvisor__Agent__Seccomp **out, pv_err_t **err)
{
	struct loader l = { .a = a, .path = name, .err = err };
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return bad(&l, "line %d column %d: %s", je.line, je.column, je.text);
	Podvisor__Agent__Seccomp *s = cri_arena_alloc(a, sizeof(*s));
	podvisor__agent__seccomp__init(s);
	int r = parse_profile(&l, root, s);
	json_decref(root);
	if (r < 0)
		return -1;
	s->origin = cri_arena_strdup(a, name);
	*out = s;
	return 0;
}

int spec_seccomp_load(struct cri_arena *a, const char *path, Podvisor__Agent__Seccomp **out, pv_err_t **err)
{
	struct loader l = { .a = a, .path = path, .err = err };
	if (!path || path[0] != '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "seccomp profile \"%s\": localhost_ref must be an absolute path on the node",
				  path ? path : "");
	struct stat st;
	if (stat(path, &st) < 0)
		return pv_err_sys(err, PV_INVALID_ARGUMENT, "seccomp profile %s", path);
	if (!S_ISREG(st.st_mode) || st.st_size > PROFILE_MAX)
		return bad(&l, "not a regular file of at most %d bytes", PROFILE_MAX);
	cleanup_free char *text = NULL;
	size_t len = 0;
	pv_err_t *rerr = NULL;
	if (pv_read_file(path, PROFILE_MAX, &text, &len, &rerr) < 0) {
		int r = bad(&l, "%s", rerr->msg);
		pv_err_free(rerr);
		return r;
	}
	return spec_seccomp_parse(a, path, text, len, out, err);
}

int spec_seccomp(struct cri_arena *a, const Runtime__V1__SecurityProfile *profile, char *const *caps, size_t n_caps,
		 Podvisor__Agent__Seccomp **out, pv_err_t **err)
{
	*out = NULL;
	if (!profile)
		return 0;
	switch (profile->profile_type) {
	case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined:
		return 0;
	case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault:
		*out = spec_seccomp_default(a, caps, n_caps);
		return 0;
	case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost: {
		const char *ref = profile->localhost_ref ? profile->localhost_ref : "";
		/* The old annotation form "localhost/<path>" names the same file. */
		if (pv_str_has_prefix(ref, "localhost/"))
			ref += strlen("localhost");
		if (spec_seccomp_load(a, ref, out, err) < 0) {
			pv_err_prefix(err, "linux.security_context.seccomp");
			return -1;
		}
		return 0;
	}
	default:
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "linux.security_context.seccomp: unknown profile type %d",
				  (int)profile->profile_type);
	}
}
