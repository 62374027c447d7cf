#include "store.h"
#include "cleanup.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CONFIG_PB (4u << 20)
#define MIN_PREFIX 3

struct pod_rec {
	char *id;
	char *name; /* uniqueness key */
	Runtime__V1__PodSandboxConfig *config;
	struct pv_pod_state st;
	struct pod_rec *next;
};

struct ctr_rec {
	char *id;
	char *pod_id;
	char *name; /* uniqueness key within the pod */
	Runtime__V1__ContainerConfig *config;
	struct pv_ctr_state st;
	struct ctr_rec *next;
};

struct pv_store {
	char *root;
	pthread_mutex_t lock;
	struct pod_rec *pods; /* creation order */
	struct ctr_rec *ctrs;
};

/* ---- small helpers ---------------------------------------------------- */

static char *xstrdup_or_null(const char *s)
{
	return s ? pv_xstrdup(s) : NULL;
}

static char **strv_copy(char **v)
{
	if (!v)
		return NULL;
	size_t n = 0;
	while (v[n])
		n++;
	char **out = pv_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		out[i] = pv_xstrdup(v[i]);
	return out;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void pv_pod_state_copy(struct pv_pod_state *dst, const struct pv_pod_state *src)
{
	*dst = *src;
	dst->runtime_handler = xstrdup_or_null(src->runtime_handler);
	dst->ip = xstrdup_or_null(src->ip);
	dst->extra_ips = strv_copy(src->extra_ips);
	dst->netns_path = xstrdup_or_null(src->netns_path);
	dst->reason = xstrdup_or_null(src->reason);
}

void pv_pod_state_clear(struct pv_pod_state *st)
{
	free(st->runtime_handler);
	free(st->ip);
	strv_free(st->extra_ips);
	free(st->netns_path);
	free(st->reason);
	memset(st, 0, sizeof(*st));
}

void pv_ctr_state_copy(struct pv_ctr_state *dst, const struct pv_ctr_state *src)
{
	*dst = *src;
	dst->reason = xstrdup_or_null(src->reason);
	dst->message = xstrdup_or_null(src->message);
	dst->image_id = xstrdup_or_null(src->image_id);
	dst->image_ref = xstrdup_or_null(src->image_ref);
	dst->image_name = xstrdup_or_null(src->image_name);
	dst->image_chain_id = xstrdup_or_null(src->image_chain_id);
	dst->log_path = xstrdup_or_null(src->log_path);
}

void pv_ctr_state_clear(struct pv_ctr_state *st)
{
	free(st->reason);
	free(st->message);
	free(st->image_id);
	free(st->image_ref);
	free(st->image_name);
	free(st->image_chain_id);
	free(st->log_path);
	memset(st, 0, sizeof(*st));
}

/* Copy a protobuf-c message through its wire form: simple and always deep. */
static ProtobufCMessage *msg_clone(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	cleanup_free uint8_t *buf = pv_xmalloc(len);
	protobuf_c_message_pack(m, buf);
	ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	if (!copy)
		abort(); /* only allocation failure can get here */
	return copy;
}

const char *pv_map_get(struct pv_map_entry *const *map, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (map[i]->key && !strcmp(map[i]->key, key))
			return map[i]->value ? map[i]->value : "";
	return NULL;
}

int pv_labels_match(struct pv_map_entry *const *sel, size_t n_sel, struct pv_map_entry *const *labels,
		    size_t n_labels)
{
	for (size_t i = 0; i < n_sel; i++) {
		const char *v = pv_map_get(labels, n_labels, sel[i]->key);
		if (!v || strcmp(v, sel[i]->value ? sel[i]->value : ""))
			return 0;
	}
	return 1;
}

/* ---- persistence ------------------------------------------------------ */

static char *obj_dir(struct pv_store *s, const char *kind, const char *id)
{
	return pv_xasprintf("%s/%s/%s", s->root, kind, id);
}

static int write_config(struct pv_store *s, const char *kind, const char *id, const ProtobufCMessage *cfg,
			pv_err_t **err)
{
	cleanup_free char *dir = obj_dir(s, kind, id);
	if (pv_mkdir_p(dir, 0700, err) < 0)
		return -1;
	size_t len = protobuf_c_message_get_packed_size(cfg);
	cleanup_free uint8_t *buf = pv_xmalloc(len);
	protobuf_c_message_pack(cfg, buf);
	cleanup_free char *path = pv_xasprintf("%s/config.pb", dir);
	return pv_write_file_atomic(path, buf, len, 0600, err);
}

static int write_json(struct pv_store *s, const char *kind, const char *id, json_t *doc, pv_err_t **err)
{
	cleanup_free char *path = pv_xasprintf("%s/%s/%s/state.json", s->root, kind, id);
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(doc);
	int r = pv_write_file_atomic(path, text, strlen(text), 0600, err);
	free(text);
	return r;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

static char *get_str(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? pv_xstrdup(v) : NULL;
}

static json_t *pod_state_json(const struct pv_pod_state *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "ready", json_boolean(st->ready));
	json_object_set_new(o, "created_ns", json_integer(st->created_ns));
	set_str(o, "runtime_handler", st->runtime_handler);
	set_str(o, "ip", st->ip);
	set_str(o, "netns_path", st->netns_path);
	set_str(o, "reason", st->reason);
	if (st->extra_ips) {
		json_t *a = json_array();
		for (size_t i = 0; st->extra_ips[i]; i++)
			json_array_append_new(a, json_string(st->extra_ips[i]));
		json_object_set_new(o, "extra_ips", a);
	}
	return o;
}

static void pod_state_from_json(json_t *o, struct pv_pod_state *st)
{
	st->ready = json_is_true(json_object_get(o, "ready"));
	st->created_ns = json_integer_value(json_object_get(o, "created_ns"));
	st->runtime_handler = get_str(o, "runtime_handler");
	st->ip = get_str(o, "ip");
	st->netns_path = get_str(o, "netns_path");
	st->reason = get_str(o, "reason");
	json_t *a = json_object_get(o, "extra_ips");
	if (json_is_array(a)) {
		st->extra_ips = pv_xcalloc(json_array_size(a) + 1, sizeof(char *));
		size_t i, n = 0;
		json_t *v;
		json_array_foreach(a, i, v)
			if (json_is_string(v))
				st->extra_ips[n++] = pv_xstrdup(json_string_value(v));
	}
}

static json_t *ctr_state_json(const char *pod_id, const struct pv_ctr_state *st)
{
	json_t *o = json_object();
	set_str(o, "pod_id", pod_id);
	json_object_set_new(o, "state", json_integer(st->state));
	json_object_set_new(o, "created_ns", json_integer(st->created_ns));
	json_object_set_new(o, "started_ns", json_integer(st->started_ns));
	json_object_set_new(o, "finished_ns", json_integer(st->finished_ns));
	json_object_set_new(o, "exit_code", json_integer(st->exit_code));
	set_str(o, "reason", st->reason);
	set_str(o, "message", st->message);
	set_str(o, "image_id", st->image_id);
	set_str(o, "image_ref", st->image_ref);
	set_str(o, "image_name", st->image_name);
	set_str(o, "image_chain_id", st->image_chain_id);
	set_str(o, "log_path", st->log_path);
	return o;
}

static void ctr_state_from_json(json_t *o, struct pv_ctr_state *st)
{
	st->state = (int)json_integer_value(json_object_get(o, "state"));
	st->created_ns = json_integer_value(json_object_get(o, "created_ns"));
	st->started_ns = json_integer_value(json_object_get(o, "started_ns"));
	st->finished_ns = json_integer_value(json_object_get(o, "finished_ns"));
	st->exit_code = (int)json_integer_value(json_object_get(o, "exit_code"));
	st->reason = get_str(o, "reason");
	st->message = get_str(o, "message");
	st->image_id = get_str(o, "image_id");
	st->image_ref = get_str(o, "image_ref");
	st->image_name = get_str(o, "image_name");
	st->image_chain_id = get_str(o, "image_chain_id");
	st->log_path = get_str(o, "log_path");
}

/* ---- names ------------------------------------------------------------ */

static char *pod_name(const Runtime__V1__PodSandboxConfig *cfg)
{
	const Runtime__V1__PodSandboxMetadata *m = cfg->metadata;
	return pv_xasprintf("%s_%s_%s_%u", m->name, m->namespace_, m->uid, m->attempt);
}

static char *ctr_name(const Runtime__V1__ContainerConfig *cfg)
{
	return pv_xasprintf("%s_%u", cfg->metadata->name, cfg->metadata->attempt);
}

/* ---- records ---------------------------------------------------------- */

static void pod_rec_free(struct pod_rec *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->name);
	if (r->config)
		protobuf_c_message_free_unpacked(&r->config->base, NULL);
	pv_pod_state_clear(&r->st);
	free(r);
}

static void ctr_rec_free(struct ctr_rec *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->pod_id);
	free(r->name);
	if (r->config)
		protobuf_c_message_free_unpacked(&r->config->base, NULL);
	pv_ctr_state_clear(&r->st);
	free(r);
}

/* Exact id, else a unique prefix of at least MIN_PREFIX characters. */
#define FIND_BY_ID(list, type, want, out_err, what)                                                        \
	({                                                                                                 \
		type *_hit = NULL;                                                                         \
		int _n = 0;                                                                                \
		size_t _len = strlen(want);                                                                \
		for (type *_r = (list); _r; _r = _r->next) {                                               \
			if (!strcmp(_r->id, want)) {                                                       \
				_hit = _r;                                                                 \
				_n = 1;                                                                    \
				break;                                                                     \
			}                                                                                  \
			if (_len >= MIN_PREFIX && !strncmp(_r->id, want, _len)) {                          \
				_hit = _r;                                                                 \
				_n++;                                                                      \
			}                                                                                  \
		}                                                                                          \
		if (_n > 1) {                                                                              \
			pv_err_set(out_err, PV_INVALID_ARGUMENT, EINVAL, "%s id prefix \"%s\" is ambiguous", \
				   what, PV_ECHO(want));                                                   \
			_hit = NULL;                                                                       \
		} else if (!_hit) {                                                                        \
			pv_err_set(out_err, PV_NOT_FOUND, ENOENT, "%s \"%s\" not found", what, PV_ECHO(want)); \
		}                                                                                          \
		_hit;                                                                                      \
	})

static struct pod_rec *pod_find(struct pv_store *s, const char *id, pv_err_t **err)
{
	if (!id || !*id) {
		pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "pod sandbox id is empty");
		return NULL;
	}
	return FIND_BY_ID(s->pods, struct pod_rec, id, err, "pod sandbox");
}

static struct ctr_rec *ctr_find(struct pv_store *s, const char *id, pv_err_t **err)
{
	if (!id || !*id) {
		pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "container id is empty");
		return NULL;
	}
	return FIND_BY_ID(s->ctrs, struct ctr_rec, id, err, "container");
}

static void append_pod(struct pv_store *s, struct pod_rec *r)
{
	struct pod_rec **pp = &s->pods;
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
}

static void append_ctr(struct pv_store *s, struct ctr_rec *r)
{
	struct ctr_rec **pp = &s->ctrs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
}

/* ---- load ------------------------------------------------------------- */

static ProtobufCMessage *load_config(const char *dir, const ProtobufCMessageDescriptor *desc)
{
	cleanup_free char *path = pv_xasprintf("%s/config.pb", dir);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	pv_err_t *err = NULL;
	if (pv_read_file(path, MAX_CONFIG_PB, &buf, &len, &err) < 0) {
		pv_err_free(err);
		return NULL;
	}
	return protobuf_c_message_unpack(desc, NULL, len, (const uint8_t *)buf);
}

static json_t *load_state(const char *dir)
{
	cleanup_free char *path = pv_xasprintf("%s/state.json", dir);
	return json_load_file(path, 0, NULL);
}

typedef void (*load_fn)(struct pv_store *s, const char *id, const char *dir);

static void load_pod(struct pv_store *s, const char *id, const char *dir)
{
	ProtobufCMessage *cfg = load_config(dir, &runtime__v1__pod_sandbox_config__descriptor);
	json_t *st = load_state(dir);
	if (!cfg || !st || !((Runtime__V1__PodSandboxConfig *)cfg)->metadata) {
		/* Creation never finished: forget it. */
		if (cfg)
			protobuf_c_message_free_unpacked(cfg, NULL);
		json_decref(st);
		pv_rm_rf(dir, NULL);
		return;
	}
	struct pod_rec *r = pv_xcalloc(1, sizeof(*r));
	r->id = pv_xstrdup(id);
	r->config = (Runtime__V1__PodSandboxConfig *)cfg;
	r->name = pod_name(r->config);
	pod_state_from_json(st, &r->st);
	json_decref(st);
	append_pod(s, r);
}

static void load_ctr(struct pv_store *s, const char *id, const char *dir)
{
	ProtobufCMessage *cfg = load_config(dir, &runtime__v1__container_config__descriptor);
	json_t *st = load_state(dir);
	const char *pod_id = st ? json_string_value(json_object_get(st, "pod_id")) : NULL;
	if (!cfg || !st || !pod_id || !((Runtime__V1__ContainerConfig *)cfg)->metadata) {
		if (cfg)
			protobuf_c_message_free_unpacked(cfg, NULL);
		json_decref(st);
		pv_rm_rf(dir, NULL);
		return;
	}
	struct ctr_rec *r = pv_xcalloc(1, sizeof(*r));
	r->id = pv_xstrdup(id);
	r->pod_id = pv_xstrdup(pod_id);
	r->config = (Runtime__V1__ContainerConfig *)cfg;
	r->name = ctr_name(r->config);
	ctr_state_from_json(st, &r->st);
	json_decref(st);
	append_ctr(s, r);
}

struct loaded {
	char *id;
	int64_t created;
};

static int by_created(const void *a, const void *b)
{
	const struct loaded *x = a, *y = b;
	return (x->created > y->created) - (x->created < y->created);
}

/* Load every object of a kind, oldest first so lists keep creation order. */
static int load_kind(struct pv_store *s, const char *kind, load_fn fn, pv_err_t **err)
{
	cleanup_free char *dir = pv_xasprintf("%s/%s", s->root, kind);
	if (pv_mkdir_p(dir, 0700, err) < 0)
		return -1;
	DIR *d = opendir(dir);
	if (!d)
		return pv_err_sys(err, PV_INTERNAL, "open %s", dir);
	struct loaded *items = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		cleanup_free char *sub = pv_xasprintf("%s/%s", dir, de->d_name);
		json_t *st = load_state(sub);
		items = pv_xrealloc(items, (n + 1) * sizeof(*items));
		items[n].id = pv_xstrdup(de->d_name);
		items[n].created = st ? json_integer_value(json_object_get(st, "created_ns")) : 0;
		json_decref(st);
		n++;
	}
	closedir(d);
	if (n)
		qsort(items, n, sizeof(*items), by_created);
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *sub = pv_xasprintf("%s/%s", dir, items[i].id);
		fn(s, items[i].id, sub);
		free(items[i].id);
	}
	free(items);
	return 0;
}

int pv_store_open(const char *root, struct pv_store **out, pv_err_t **err)
{
	struct pv_store *s = pv_xcalloc(1, sizeof(*s));
	s->root = pv_xstrdup(root);
	pthread_mutex_init(&s->lock, NULL);
	if (load_kind(s, "pods", load_pod, err) < 0 || load_kind(s, "containers", load_ctr, err) < 0) {
		pv_store_close(s);
		return -1;
	}
	/* A container whose pod is gone cannot be reached by any call: drop it. */
	for (struct ctr_rec **pp = &s->ctrs; *pp;) {
		struct ctr_rec *c = *pp;
		struct pod_rec *p;
		for (p = s->pods; p && strcmp(p->id, c->pod_id); p = p->next)
			;
		if (p) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		cleanup_free char *dir = obj_dir(s, "containers", c->id);
		pv_rm_rf(dir, NULL);
		ctr_rec_free(c);
	}
	*out = s;
	return 0;
}

void pv_store_close(struct pv_store *s)
{
	if (!s)
		return;
	while (s->pods) {
		struct pod_rec *r = s->pods;
		s->pods = r->next;
		pod_rec_free(r);
	}
	while (s->ctrs) {
		struct ctr_rec *r = s->ctrs;
		s->ctrs = r->next;
		ctr_rec_free(r);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->root);
	free(s);
}

/* ---- pods ------------------------------------------------------------- */

static struct pv_pod *pod_snapshot(const struct pod_rec *r)
{
	struct pv_pod *p = pv_xcalloc(1, sizeof(*p));
	p->id = pv_xstrdup(r->id);
	p->config = (Runtime__V1__PodSandboxConfig *)msg_clone(&r->config->base);
	pv_pod_state_copy(&p->st, &r->st);
	return p;
}

void pv_pod_free(struct pv_pod *p)
{
	if (!p)
		return;
	free(p->id);
	if (p->config)
		protobuf_c_message_free_unpacked(&p->config->base, NULL);
	pv_pod_state_clear(&p->st);
	free(p);
}

void pv_pod_list_free(struct pv_pod **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pv_pod_free(list[i]);
	free(list);
}

int pv_store_pod_add(struct pv_store *s, const Runtime__V1__PodSandboxConfig *cfg, const struct pv_pod_state *st,
		     char **id_out, pv_err_t **err)
{
	if (!cfg->metadata || !cfg->metadata->name || !*cfg->metadata->name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.metadata.name is required");
	cleanup_free char *name = pod_name(cfg);
	pthread_mutex_lock(&s->lock);
	for (struct pod_rec *r = s->pods; r; r = r->next) {
		if (!strcmp(r->name, name)) {
			pthread_mutex_unlock(&s->lock);
			return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST,
					  "pod sandbox name \"%s\" is already reserved by %s", name, r->id);
		}
	}
	struct pod_rec *r = pv_xcalloc(1, sizeof(*r));
	r->id = pv_random_hex(32);
	r->name = steal_pointer(&name);
	r->config = (Runtime__V1__PodSandboxConfig *)msg_clone(&cfg->base);
	pv_pod_state_copy(&r->st, st);
	if (write_config(s, "pods", r->id, &cfg->base, err) < 0 ||
	    write_json(s, "pods", r->id, pod_state_json(&r->st), err) < 0) {
		cleanup_free char *dir = obj_dir(s, "pods", r->id);
		pv_rm_rf(dir, NULL);
		pthread_mutex_unlock(&s->lock);
		pod_rec_free(r);
		return -1;
	}
	append_pod(s, r);
	*id_out = pv_xstrdup(r->id);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int pv_store_pod_get(struct pv_store *s, const char *id, struct pv_pod **out, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct pod_rec *r = pod_find(s, id, err);
	if (r)
		*out = pod_snapshot(r);
	pthread_mutex_unlock(&s->lock);
	return r ? 0 : -1;
}

int pv_store_pod_set_state(struct pv_store *s, const char *id, const struct pv_pod_state *st, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct pod_rec *r = pod_find(s, id, err);
	int ret = -1;
	if (r && write_json(s, "pods", r->id, pod_state_json(st), err) == 0) {
		pv_pod_state_clear(&r->st);
		pv_pod_state_copy(&r->st, st);
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int pv_store_pod_set_ready(struct pv_store *s, const char *id, int ready, const char *reason, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct pod_rec *r = pod_find(s, id, err);
	int ret = -1;
	if (r) {
		struct pv_pod_state st;
		pv_pod_state_copy(&st, &r->st);
		st.ready = ready;
		free(st.reason);
		st.reason = reason ? pv_xstrdup(reason) : NULL;
		if (write_json(s, "pods", r->id, pod_state_json(&st), err) == 0) {
			pv_pod_state_clear(&r->st);
			r->st = st;
			ret = 0;
		} else {
			pv_pod_state_clear(&st);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int pv_store_pod_remove(struct pv_store *s, const char *id, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct pod_rec **pp = &s->pods;
	while (*pp && strcmp((*pp)->id, id))
		pp = &(*pp)->next;
	if (!*pp) {
		pthread_mutex_unlock(&s->lock);
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "pod sandbox \"%s\" not found", PV_ECHO(id));
	}
	struct pod_rec *r = *pp;
	cleanup_free char *dir = obj_dir(s, "pods", r->id);
	if (pv_rm_rf(dir, err) < 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	*pp = r->next;
	pthread_mutex_unlock(&s->lock);
	pod_rec_free(r);
	return 0;
}

struct pv_pod **pv_store_pod_list(struct pv_store *s, size_t *n)
{
	pthread_mutex_lock(&s->lock);
	size_t count = 0;
	for (struct pod_rec *r = s->pods; r; r = r->next)
		count++;
	struct pv_pod **list = pv_xcalloc(count + 1, sizeof(*list));
	size_t i = 0;
	for (struct pod_rec *r = s->pods; r; r = r->next)
		list[i++] = pod_snapshot(r);
	pthread_mutex_unlock(&s->lock);
	*n = count;
	return list;
}

/* ---- containers ------------------------------------------------------- */

static struct pv_ctr *ctr_snapshot(const struct ctr_rec *r)
{
	struct pv_ctr *c = pv_xcalloc(1, sizeof(*c));
	c->id = pv_xstrdup(r->id);
	c->pod_id = pv_xstrdup(r->pod_id);
	c->config = (Runtime__V1__ContainerConfig *)msg_clone(&r->config->base);
	pv_ctr_state_copy(&c->st, &r->st);
	return c;
}

void pv_ctr_free(struct pv_ctr *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->pod_id);
	if (c->config)
		protobuf_c_message_free_unpacked(&c->config->base, NULL);
	pv_ctr_state_clear(&c->st);
	free(c);
}

void pv_ctr_list_free(struct pv_ctr **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pv_ctr_free(list[i]);
	free(list);
}

int pv_store_ctr_add(struct pv_store *s, const char *pod_id, const Runtime__V1__ContainerConfig *cfg,
		     const struct pv_ctr_state *st, char **id_out, pv_err_t **err)
{
	if (!cfg->metadata || !cfg->metadata->name || !*cfg->metadata->name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.metadata.name is required");
	cleanup_free char *name = ctr_name(cfg);
	pthread_mutex_lock(&s->lock);
	struct pod_rec *p;
	for (p = s->pods; p && strcmp(p->id, pod_id); p = p->next)
		;
	if (!p) {
		pthread_mutex_unlock(&s->lock);
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "pod sandbox \"%s\" not found", PV_ECHO(pod_id));
	}
	for (struct ctr_rec *r = s->ctrs; r; r = r->next) {
		if (!strcmp(r->pod_id, pod_id) && !strcmp(r->name, name)) {
			pthread_mutex_unlock(&s->lock);
			return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST,
					  "container name \"%s\" (name_attempt) is already used in pod %s by %s",
					  name, pod_id, r->id);
		}
	}
	struct ctr_rec *r = pv_xcalloc(1, sizeof(*r));
	r->id = pv_random_hex(32);
	r->pod_id = pv_xstrdup(pod_id);
	r->name = steal_pointer(&name);
	r->config = (Runtime__V1__ContainerConfig *)msg_clone(&cfg->base);
	pv_ctr_state_copy(&r->st, st);
	if (write_config(s, "containers", r->id, &cfg->base, err) < 0 ||
	    write_json(s, "containers", r->id, ctr_state_json(pod_id, &r->st), err) < 0) {
		cleanup_free char *dir = obj_dir(s, "containers", r->id);
		pv_rm_rf(dir, NULL);
		pthread_mutex_unlock(&s->lock);
		ctr_rec_free(r);
		return -1;
	}
	append_ctr(s, r);
	*id_out = pv_xstrdup(r->id);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int pv_store_ctr_get(struct pv_store *s, const char *id, struct pv_ctr **out, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct ctr_rec *r = ctr_find(s, id, err);
	if (r)
		*out = ctr_snapshot(r);
	pthread_mutex_unlock(&s->lock);
	return r ? 0 : -1;
}

int pv_store_ctr_set_state(struct pv_store *s, const char *id, const struct pv_ctr_state *st, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct ctr_rec *r = ctr_find(s, id, err);
	int ret = -1;
	if (r && write_json(s, "containers", r->id, ctr_state_json(r->pod_id, st), err) == 0) {
		pv_ctr_state_clear(&r->st);
		pv_ctr_state_copy(&r->st, st);
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int pv_store_ctr_remove(struct pv_store *s, const char *id, pv_err_t **err)
{
	pthread_mutex_lock(&s->lock);
	struct ctr_rec **pp = &s->ctrs;
	while (*pp && strcmp((*pp)->id, id))
		pp = &(*pp)->next;
	if (!*pp) {
		pthread_mutex_unlock(&s->lock);
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container \"%s\" not found", PV_ECHO(id));
	}
	struct ctr_rec *r = *pp;
	cleanup_free char *dir = obj_dir(s, "containers", r->id);
	if (pv_rm_rf(dir, err) < 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	*pp = r->next;
	pthread_mutex_unlock(&s->lock);
	ctr_rec_free(r);
	return 0;
}

struct pv_ctr **pv_store_ctr_list(struct pv_store *s, size_t *n)
{
	pthread_mutex_lock(&s->lock);
	size_t count = 0;
	for (struct ctr_rec *r = s->ctrs; r; r = r->next)
		count++;
	struct pv_ctr **list = pv_xcalloc(count + 1, sizeof(*list));
	size_t i = 0;
	for (struct ctr_rec *r = s->ctrs; r; r = r->next)
		list[i++] = ctr_snapshot(r);
	pthread_mutex_unlock(&s->lock);
	*n = count;
	return list;
}
