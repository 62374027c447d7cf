#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"
#include "ext4.h"
#include "layer.h"
#include "manifest.h"
#include "options.h"
#include "platform.h"
#include "ref.h"
#include "util.h"

/* An image record as persisted in records/<hex>.json. */
struct rec {
	char *id;
	json_t *tags, *digests, *blobs; /* arrays of strings */
	char *chain_id;
	struct image_platform platform; /* from the config; records from before platforms: the default */
	uint64_t size;
	int64_t created_ns;
	struct rec *next;
};

struct image_store {
	char *dir;
	int lock_fd;
	struct image_options opts;
	struct image_platform default_platform; /* opts' os/arch/variant: pulls that name none */
	pthread_mutex_t mu;  /* records */
	pthread_rwlock_t gc; /* pulls hold it shared, GC exclusive */
	int gc_pending;
	struct rec *recs;
	struct pin {
		char *chain_id;
		unsigned count;
	} *pins; /* ext4 images in use by containers: never collected */
	size_t n_pins;
};

static void json_decref_p(json_t **j)
{
	json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(json_decref_p)))

static void rec_free(struct rec *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->chain_id);
	json_decref(r->tags);
	json_decref(r->digests);
	json_decref(r->blobs);
	free(r);
}

const char *image_store_dir(const struct image_store *s)
{
	return s->dir;
}

static char *blob_path(struct image_store *s, const char *digest)
{
	return pv_xasprintf("%s/blobs/sha256/%s", s->dir, image_digest_hex(digest));
}

static char *ext4_path(struct image_store *s, const char *chain_id)
{
	return pv_xasprintf("%s/ext4/%s.ext4", s->dir, image_digest_hex(chain_id));
}

static int strarr_has(json_t *a, const char *v)
{
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) if (!strcmp(json_string_value(e), v)) return 1;
	return 0;
}

static void strarr_add(json_t *a, const char *v)
{
	if (!strarr_has(a, v))
		json_array_append_new(a, json_string(v));
}

static int strarr_del(json_t *a, const char *v)
{
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!strcmp(json_string_value(json_array_get(a, i)), v)) {
			json_array_remove(a, i);
			return 1;
		}
	return 0;
}

static int strarr_valid(json_t *a)
{
	size_t i;
	json_t *e;
	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, e) if (!json_is_string(e)) return 0;
	return 1;
}

/* ---- records on disk --------------------------------------------------- */

static int rec_save(struct image_store *s, struct rec *r, pv_err_t **err)
{
	char plat[IMAGE_PLATFORM_STR];
	cleanup_json json_t *j = json_pack("{s:s, s:O, s:O, s:O, s:s, s:I, s:I, s:s}", "id", r->id, "repo_tags", r->tags,
					   "repo_digests", r->digests, "blobs", r->blobs, "chain_id", r->chain_id,
					   "size", (json_int_t)r->size, "created_ns", (json_int_t)r->created_ns,
					   "platform", image_platform_format(&r->platform, plat));
	cleanup_free char *txt = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
	cleanup_free char *path = pv_xasprintf("%s/records/%s.json", s->dir, image_digest_hex(r->id));
	return pv_write_file_atomic(path, txt, strlen(txt), 0644, err);
}

static int rec_load(struct image_store *s, const char *path, struct rec **out)
{
	cleanup_json json_t *j = json_load_file(path, 0, NULL);
	const char *id = NULL, *chain = NULL, *plat = NULL;
	json_t *tags = NULL, *dgs = NULL, *blobs = NULL;
	json_int_t size = 0, created = 0;
	if (!j || json_unpack(j, "{s:s, s:o, s:o, s:o, s:s, s:I, s?I, s?s}", "id", &id, "repo_tags", &tags,
			      "repo_digests", &dgs, "blobs", &blobs, "chain_id", &chain, "size", &size, "created_ns",
			      &created, "platform", &plat) < 0)
		return -1;
	if (!image_digest_valid(id) || !image_digest_valid(chain) || !strarr_valid(tags) || !strarr_valid(dgs) ||
	    !strarr_valid(blobs))
		return -1;
	struct rec *r = pv_xcalloc(1, sizeof(*r));
	if (!plat || image_platform_parse(plat, &r->platform, NULL) < 0)
		r->platform = s->default_platform;
	r->id = pv_xstrdup(id);
	r->chain_id = pv_xstrdup(chain);
	r->tags = json_incref(tags);
	r->digests = json_incref(dgs);
	r->blobs = json_incref(blobs);
	r->size = size;
	r->created_ns = created;
	*out = r;
	return 0;
}

static void load_records(struct image_store *s)
{
	cleanup_free char *dir = pv_xasprintf("%s/records", s->dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".json"))
			continue;
		cleanup_free char *p = pv_xasprintf("%s/%s", dir, de->d_name);
		struct rec *r;
		if (rec_load(s, p, &r) < 0)
			continue; /* a record we cannot read is not an image */
		cleanup_free char *e4 = ext4_path(s, r->chain_id);
		if (access(e4, F_OK) < 0) {
			rec_free(r);
			continue;
		}
		r->next = s->recs;
		s->recs = r;
	}
	closedir(d);
}

/* Empty tmp/; keep_partial keeps partial blob downloads for the next pull to continue. */
static void clean_tmp(struct image_store *s, int keep_partial)
{
	cleanup_free char *dir = pv_xasprintf("%s/tmp", s->dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '.' || (keep_partial && n > 8 && !strcmp(de->d_name + n - 8, ".partial")))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno == EISDIR) {
			cleanup_free char *p = pv_xasprintf("%s/%s", dir, de->d_name);
			pv_rm_rf(p, NULL);
		}
	}
	closedir(d);
}

int image_store_open(const char *root_dir, json_t *cfg, struct image_store **out, pv_err_t **err)
{
	struct image_options opts;
	if (image_options_parse(cfg, &opts, err) < 0)
		return -1;
	cleanup_free char *lock = NULL;
	struct image_store *s = pv_xcalloc(1, sizeof(*s));
	s->opts = opts;
	image_platform_set(&s->default_platform, opts.os, opts.arch, opts.variant);
	s->lock_fd = -1;
	s->dir = pv_xasprintf("%s/images", root_dir);
	pthread_mutex_init(&s->mu, NULL);
	pthread_rwlock_init(&s->gc, NULL);
	static const char *const sub[] = { "blobs/sha256", "records", "ext4", "tmp" };
	for (size_t i = 0; i < PV_ARRAY_SIZE(sub); i++) {
		cleanup_free char *p = pv_xasprintf("%s/%s", s->dir, sub[i]);
		if (pv_mkdir_p(p, 0700, err) < 0)
			goto fail;
	}
	lock = pv_xasprintf("%s/store.lock", s->dir);
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		pv_err_sys(err, PV_INTERNAL, "open %s", lock);
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		pv_err_set(err, PV_FAILED_PRECONDITION, EBUSY, "image store %s is in use by another process", s->dir);
		goto fail;
	}
	/* Half-built ext4 images and locks of a killed pull go; partial downloads are resumed. */
	clean_tmp(s, 1);
	load_records(s);
	*out = s;
	return 0;
fail:
	pv_err_prefix(err, "opening image store");
	image_store_close(s);
	return -1;
}

void image_store_close(struct image_store *s)
{
	if (!s)
		return;
	while (s->recs) {
		struct rec *n = s->recs->next;
		rec_free(s->recs);
		s->recs = n;
	}
	for (size_t i = 0; i < s->n_pins; i++)
		free(s->pins[i].chain_id);
	free(s->pins);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	image_options_free(&s->opts);
	pthread_mutex_destroy(&s->mu);
	pthread_rwlock_destroy(&s->gc);
	free(s->dir);
	free(s);
}

/* ---- fetching ------------------------------------------------------------ */

/* flock()ed file in tmp/: serialises work on one blob or chain across threads. */
static int lock_name(struct image_store *s, const char *name, pv_err_t **err)
{
	cleanup_free char *p = pv_xasprintf("%s/tmp/%s.lock", s->dir, name);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open %s", p);
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			close(fd);
			return pv_err_sys(err, PV_INTERNAL, "flock %s", p);
		}
	return fd;
}

static int store_blob_mem(struct image_store *s, const char *digest, const char *buf, size_t len, pv_err_t **err)
{
	cleanup_free char *p = blob_path(s, digest);
	if (access(p, F_OK) == 0)
		return 0;
	cleanup_close int lk = lock_name(s, image_digest_hex(digest), err);
	if (lk < 0)
		return -1;
	if (access(p, F_OK) == 0)
		return 0;
	return pv_write_file_atomic(p, buf, len, 0644, err);
}

/* Download a blob unless present: tmp file, verified, then renamed into blobs/. */
static int fetch_blob(struct image_store *s, struct registry_client *c, const char *digest, int64_t size,
		      pv_err_t **err)
{
	cleanup_free char *final = blob_path(s, digest);
	if (access(final, F_OK) == 0)
		return 0;
	cleanup_close int lk = lock_name(s, image_digest_hex(digest), err);
	if (lk < 0)
		return -1;
	if (access(final, F_OK) == 0) /* another pull got it while we waited */
		return 0;
	cleanup_free char *part = pv_xasprintf("%s/tmp/%s.partial", s->dir, image_digest_hex(digest));
	/* A partial file left by a killed pull is continued, not restarted. */
	cleanup_close int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open %s", part);
	int r = registry_get_blob(c, digest, size, fd, 1, err);
	if (r == 0 && fsync(fd) < 0)
		r = pv_err_sys(err, PV_INTERNAL, "fsync %s", part);
	if (r == 0 && rename(part, final) < 0)
		r = pv_err_sys(err, PV_INTERNAL, "rename %s", part);
	if (r < 0) /* an orderly failure leaves nothing; only a killed pull leaves a part to resume */
		unlink(part);
	return r;
}

static int build_ext4(struct image_store *s, const struct image_doc *m, const struct image_config *cfg,
		      const char *chain_id, pv_err_t **err)
{
	cleanup_free char *final = ext4_path(s, chain_id);
	if (access(final, F_OK) == 0)
		return 0;
	cleanup_free char *lname = pv_xasprintf("chain-%s", image_digest_hex(chain_id));
	cleanup_close int lk = lock_name(s, lname, err);
	if (lk < 0)
		return -1;
	if (access(final, F_OK) == 0)
		return 0;
	cleanup_free char *tmpdir = pv_xasprintf("%s/tmp", s->dir);
	struct fs_tree *t;
	if (fs_tree_new(tmpdir, &t, err) < 0)
		return -1;
	int r = 0;
	for (size_t i = 0; i < m->n_layers && r == 0; i++) {
		cleanup_free char *bp = blob_path(s, m->layers[i].digest);
		/* The cache is keyed by diff IDs: check them, or a bad image could poison a good one's rootfs. */
		char diff_id[IMAGE_DIGEST_LEN + 1];
		r = fs_tree_apply_file_digest(t, bp, diff_id, err);
		if (r == 0 && strcmp(diff_id, cfg->diff_ids[i]))
			r = pv_err_set(err, PV_DATA_LOSS, EIO, "uncompressed digest %s does not match diff_id %s",
				       diff_id, cfg->diff_ids[i]);
		if (r < 0)
			pv_err_prefix(err, "layer %s", m->layers[i].digest);
	}
	cleanup_free char *tmp = pv_xasprintf("%s/tmp/%s.ext4", s->dir, image_digest_hex(chain_id));
	unlink(tmp);
	if (r == 0)
		r = image_ext4_write(t, tmp, err);
	fs_tree_free(t);
	if (r == 0 && rename(tmp, final) < 0)
		r = pv_err_sys(err, PV_INTERNAL, "rename %s", tmp);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Resolve the manifest on the first endpoint that answers. */
static int resolve_manifest(struct image_store *s, const struct image_ref *ref, const struct registry_auth *auth,
			    struct registry_client **client, char **body, size_t *len, char **ctype, char **digest,
			    pv_err_t **err)
{
	char **eps = image_options_endpoints(&s->opts, ref->registry);
	struct registry_opts ro = { .timeout_s = s->opts.timeout_s, .max_retries = s->opts.max_retries };
	int r = -1;
	pv_err_t *last = NULL;
	for (char **ep = eps; *ep; ep++) {
		struct registry_client *c = registry_client_new(*ep, ref->repo, auth, &ro);
		pv_err_t *e = NULL;
		r = registry_get_manifest(c, ref->digest ? ref->digest : ref->tag, body, len, ctype, digest, &e);
		if (r == 0) {
			*client = c;
			break;
		}
		registry_client_free(c);
		pv_err_free(last);
		last = e;
	}
	image_strv_free(eps);
	if (r < 0)
		pv_err_move(err, last);
	else
		pv_err_free(last);
	return r;
}

static void config_user(const char *user, struct image_info *i)
{
	if (!user || !*user)
		return;
	cleanup_free char *u = pv_xstrndup(user, strcspn(user, ":"));
	char *end;
	errno = 0;
	long long v = strtoll(u, &end, 10);
	if (*u && !*end && !errno && v >= 0) {
		i->has_uid = 1;
		i->uid = v;
	} else {
		i->username = steal_pointer(&u);
	}
}

static struct rec *find_rec_locked(struct image_store *s, const char *id)
{
	for (struct rec *r = s->recs; r; r = r->next)
		if (!strcmp(r->id, id))
			return r;
	return NULL;
}

/* Add (or update) the record of a pulled image; moves the tag off any other image of the same
 * platform (one tag names one image per platform: an arm64 and an amd64 pod each get theirs). */
static int commit_record(struct image_store *s, const struct image_ref *ref, const char *id, const char *chain_id,
			 const struct image_platform *plat, const char *repo_digest, json_t *blobs, uint64_t size,
			 pv_err_t **err)
{
	pthread_mutex_lock(&s->mu);
	cleanup_free char *tag = image_ref_tagged(ref);
	int r = 0;
	for (struct rec *o = s->recs; o && tag; o = o->next)
		if (strcmp(o->id, id) && image_platform_match(&o->platform, plat) && strarr_del(o->tags, tag))
			if ((r = rec_save(s, o, err)) < 0)
				goto out;
	struct rec *rec = find_rec_locked(s, id);
	int fresh = !rec;
	if (fresh) {
		rec = pv_xcalloc(1, sizeof(*rec));
		rec->id = pv_xstrdup(id);
		rec->chain_id = pv_xstrdup(chain_id);
		rec->tags = json_array();
		rec->digests = json_array();
		rec->blobs = json_array();
		rec->created_ns = pv_now_realtime_ns();
	}
	rec->platform = *plat;
	rec->size = size;
	if (tag)
		strarr_add(rec->tags, tag);
	strarr_add(rec->digests, repo_digest);
	size_t i;
	json_t *b;
	json_array_foreach(blobs, i, b) strarr_add(rec->blobs, json_string_value(b));
	if ((r = rec_save(s, rec, err)) < 0) {
		if (fresh)
			rec_free(rec);
		goto out;
	}
	if (fresh) {
		rec->next = s->recs;
		s->recs = rec;
	}
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

static void gc(struct image_store *s);

/* Parse the manifest fetched for the reference; through an index, fetch the one for our platform.
 * Both are kept as blobs (the repo digest names the top one). */
static int load_manifest(struct image_store *s, struct registry_client *c, const char *body, size_t len,
			 const char *ctype, const char *top_digest, const struct image_platform *want, size_t n_want,
			 json_t *blobs, struct image_doc *out, char **variant, pv_err_t **err)
{
	struct image_doc doc;
	/* declared before the first goto: the cleanup runs on every way out */
	cleanup_free char *mbody = NULL;
	cleanup_free char *mctype = NULL;
	cleanup_free char *mdigest = NULL;
	size_t mlen = 0;
	if (image_doc_parse(body, len, ctype, &doc, err) < 0)
		return -1;
	if (store_blob_mem(s, top_digest, body, len, err) < 0)
		goto fail;
	strarr_add(blobs, top_digest);
	if (doc.kind == IMAGE_DOC_MANIFEST) {
		*out = doc;
		return 0;
	}
	const struct image_descriptor *d;
	if (image_doc_select_platforms(&doc, want, n_want, &d, err) < 0 ||
	    registry_get_manifest(c, d->digest, &mbody, &mlen, &mctype, &mdigest, err) < 0)
		goto fail;
	*variant = d->variant ? pv_xstrdup(d->variant) : NULL;
	image_doc_free(&doc);
	if (image_doc_parse(mbody, mlen, mctype, &doc, err) < 0)
		return -1;
	if (doc.kind != IMAGE_DOC_MANIFEST) {
		pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "index entry %s is not an image manifest", mdigest);
		goto fail;
	}
	if (store_blob_mem(s, mdigest, mbody, mlen, err) < 0)
		goto fail;
	strarr_add(blobs, mdigest);
	*out = doc;
	return 0;
fail:
	image_doc_free(&doc);
	return -1;
}

/* The platform a pulled image runs on (its config, the index entry's variant); a single-platform
 * image must be one of want (NOT_FOUND naming both), unless the caller named no platform. */
static int image_platform_of(const struct image_config *cfg, const char *variant, const struct image_platform *want,
			     size_t n_want, bool strict, struct image_platform *out, pv_err_t **err)
{
	if (!cfg->os || !cfg->arch) {
		*out = want[0]; /* a config without a platform: take it as asked for */
		return 0;
	}
	image_platform_set(out, cfg->os, cfg->arch, variant);
	if (!strict || image_platform_find(want, n_want, out) >= 0)
		return 0;
	char have[IMAGE_PLATFORM_STR];
	cleanup_free char *wanted = image_platforms_describe(want, n_want);
	return pv_err_set(err, PV_NOT_FOUND, ENOENT, "no manifest for platform %s: the image is %s only", wanted,
			  image_platform_format(out, have));
}

static int pull_locked(struct image_store *s, const struct image_ref *ref, const struct registry_auth *auth,
		       const struct image_platform *want, size_t n_want, bool strict, char **image_id,
		       pv_err_t **err)
{
	struct registry_client *c = NULL;
	cleanup_free char *body = NULL, *ctype = NULL, *top_digest = NULL, *variant = NULL;
	size_t len = 0;
	if (resolve_manifest(s, ref, auth, &c, &body, &len, &ctype, &top_digest, err) < 0)
		return -1;
	cleanup_json json_t *blobs = json_array();
	struct image_doc doc = { 0 };
	struct image_platform plat;
	int r = load_manifest(s, c, body, len, ctype, top_digest, want, n_want, blobs, &doc, &variant, err);
	cleanup_free char *cfgbuf = NULL;
	size_t cfglen = 0;
	struct image_config cfg = { 0 };
	if (r == 0)
		r = fetch_blob(s, c, doc.config.digest, doc.config.size, err);
	if (r == 0) {
		cleanup_free char *p = blob_path(s, doc.config.digest);
		strarr_add(blobs, doc.config.digest);
		r = pv_read_file(p, IMAGE_MAX_CONFIG, &cfgbuf, &cfglen, err);
	}
	if (r == 0)
		r = image_config_parse(cfgbuf, cfglen, &cfg, err);
	if (r == 0)
		r = image_platform_of(&cfg, variant, want, n_want, strict, &plat, err);
	if (r == 0 && cfg.n_diff_ids != doc.n_layers)
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image config has %zu diff_ids for %zu layers",
			       cfg.n_diff_ids, doc.n_layers);
	uint64_t size = doc.config.size;
	for (size_t i = 0; r == 0 && i < doc.n_layers; i++) {
		r = fetch_blob(s, c, doc.layers[i].digest, doc.layers[i].size, err);
		strarr_add(blobs, doc.layers[i].digest);
		size += doc.layers[i].size;
	}
	char chain[IMAGE_DIGEST_LEN + 1];
	if (r == 0) {
		image_chain_id(cfg.diff_ids, cfg.n_diff_ids, chain);
		r = build_ext4(s, &doc, &cfg, chain, err);
	}
	if (r == 0) {
		cleanup_free char *rd = image_ref_digested(ref, top_digest);
		r = commit_record(s, ref, doc.config.digest, chain, &plat, rd, blobs, size, err);
	}
	if (r == 0)
		*image_id = pv_xstrdup(doc.config.digest);
	image_config_free(&cfg);
	image_doc_free(&doc);
	registry_client_free(c);
	return r;
}

int image_store_pull_for(struct image_store *s, const char *name, const struct registry_auth *auth,
			 const struct image_platform *want, size_t n_want, char **image_id, pv_err_t **err)
{
	struct image_ref ref;
	bool strict = n_want > 0;
	if (!n_want) {
		want = &s->default_platform;
		n_want = 1;
	}
	if (image_ref_parse(name, &ref, err) < 0)
		return -1;
	pthread_rwlock_rdlock(&s->gc);
	int r = pull_locked(s, &ref, auth, want, n_want, strict, image_id, err);
	pthread_rwlock_unlock(&s->gc);
	if (r < 0)
		pv_err_prefix(err, "pulling %s", name);
	image_ref_free(&ref);
	if (__atomic_load_n(&s->gc_pending, __ATOMIC_SEQ_CST))
		gc(s);
	return r;
}

int image_store_pull(struct image_store *s, const char *name, const struct registry_auth *auth, char **image_id,
		     pv_err_t **err)
{
	return image_store_pull_for(s, name, auth, NULL, 0, image_id, err);
}

/* ---- queries ------------------------------------------------------------- */

static char **strv_from_arr(json_t *a)
{
	char **v = pv_xcalloc(json_array_size(a) + 1, sizeof(char *));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) v[i] = pv_xstrdup(json_string_value(e));
	return v;
}

static char **strv_dup(char **src)
{
	if (!src)
		return NULL;
	size_t n = 0;
	while (src[n])
		n++;
	char **v = pv_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		v[i] = pv_xstrdup(src[i]);
	return v;
}

static struct image_info *info_from_rec(struct image_store *s, const struct rec *r)
{
	struct image_info *i = pv_xcalloc(1, sizeof(*i));
	i->id = pv_xstrdup(r->id);
	i->repo_tags = strv_from_arr(r->tags);
	i->repo_digests = strv_from_arr(r->digests);
	i->size = r->size;
	i->chain_id = pv_xstrdup(r->chain_id);
	i->ext4_path = ext4_path(s, r->chain_id);
	i->created_ns = r->created_ns;
	char plat[IMAGE_PLATFORM_STR];
	i->platform = pv_xstrdup(image_platform_format(&r->platform, plat));
	cleanup_free char *p = blob_path(s, r->id);
	cleanup_free char *buf = NULL;
	size_t len;
	struct image_config c;
	if (pv_read_file(p, IMAGE_MAX_CONFIG, &buf, &len, NULL) == 0 && image_config_parse(buf, len, &c, NULL) == 0) {
		config_user(c.user, i);
		i->user = c.user ? pv_xstrdup(c.user) : NULL;
		i->workdir = c.workdir ? pv_xstrdup(c.workdir) : NULL;
		i->stop_signal = c.stop_signal ? pv_xstrdup(c.stop_signal) : NULL;
		i->env = strv_dup(c.env);
		i->entrypoint = strv_dup(c.entrypoint);
		i->cmd = strv_dup(c.cmd);
		i->exposed_ports = strv_dup(c.exposed_ports);
		image_config_free(&c);
	}
	return i;
}

void image_info_free(struct image_info *i)
{
	if (!i)
		return;
	free(i->id);
	image_strv_free(i->repo_tags);
	image_strv_free(i->repo_digests);
	free(i->username);
	free(i->chain_id);
	free(i->platform);
	free(i->ext4_path);
	free(i->user);
	free(i->workdir);
	free(i->stop_signal);
	image_strv_free(i->env);
	image_strv_free(i->entrypoint);
	image_strv_free(i->cmd);
	image_strv_free(i->exposed_ports);
	free(i);
}

void image_info_list_free(struct image_info **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		image_info_free(v[i]);
	free(v);
}

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* A tag or digest can name one image per platform: the first of want that has one wins, else any. */
static struct rec *lookup_locked(struct image_store *s, const char *name, const struct image_platform *want,
				 size_t n_want, pv_err_t **err)
{
	const char *hex = pv_str_has_prefix(name, "sha256:") ? name + 7 : name;
	size_t hl = strlen(hex);
	if (hl >= 12 && hl <= 64 && is_hex(hex, hl)) {
		struct rec *hit = NULL;
		for (struct rec *r = s->recs; r; r = r->next)
			if (!strncmp(r->id + 7, hex, hl)) {
				if (hit) {
					pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image id prefix %s is ambiguous", name);
					return NULL;
				}
				hit = r;
			}
		if (hit || hl == 64)
			return hit;
	}
	struct image_ref ref;
	if (image_ref_parse(name, &ref, err) < 0)
		return NULL;
	cleanup_free char *key = ref.digest ? image_ref_digested(&ref, ref.digest) : image_ref_tagged(&ref);
	image_ref_free(&ref);
	struct rec *best = NULL;
	int best_rank = INT32_MAX;
	for (struct rec *r = s->recs; r; r = r->next) {
		if (!strarr_has(r->tags, key) && !strarr_has(r->digests, key))
			continue;
		int rank = image_platform_find(want, n_want, &r->platform);
		rank = rank < 0 ? INT32_MAX - 1 : rank;
		if (rank < best_rank) {
			best = r;
			best_rank = rank;
		}
	}
	return best;
}

int image_store_resolve_for(struct image_store *s, const char *name, const struct image_platform *want,
			    size_t n_want, struct image_info **out, pv_err_t **err)
{
	pv_err_t *e = NULL;
	if (!n_want) {
		want = &s->default_platform;
		n_want = 1;
	}
	pthread_mutex_lock(&s->mu);
	struct rec *r = lookup_locked(s, name, want, n_want, &e);
	struct image_info *i = r ? info_from_rec(s, r) : NULL;
	pthread_mutex_unlock(&s->mu);
	if (e) {
		pv_err_move(err, e);
		return -EINVAL;
	}
	if (!i)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "image \"%s\" not found", name);
	*out = i;
	return 0;
}

int image_store_resolve(struct image_store *s, const char *name, struct image_info **out, pv_err_t **err)
{
	return image_store_resolve_for(s, name, NULL, 0, out, err);
}

int image_store_acquire_for(struct image_store *s, const char *name, const struct image_platform *want,
			    size_t n_want, struct image_info **out, pv_err_t **err)
{
	struct image_info *i;
	if (image_store_resolve_for(s, name, want, n_want, &i, err) < 0)
		return -1;
	pthread_mutex_lock(&s->mu);
	size_t k;
	for (k = 0; k < s->n_pins && strcmp(s->pins[k].chain_id, i->chain_id); k++)
		;
	if (k == s->n_pins) {
		s->pins = pv_xrealloc(s->pins, (s->n_pins + 1) * sizeof(*s->pins));
		s->pins[s->n_pins++] = (struct pin){ pv_xstrdup(i->chain_id), 0 };
	}
	s->pins[k].count++;
	pthread_mutex_unlock(&s->mu);
	*out = i;
	return 0;
}

int image_store_acquire(struct image_store *s, const char *name, struct image_info **out, pv_err_t **err)
{
	return image_store_acquire_for(s, name, NULL, 0, out, err);
}

void image_store_release(struct image_store *s, const char *chain_id)
{
	int unpinned = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < s->n_pins; k++) {
		if (strcmp(s->pins[k].chain_id, chain_id))
			continue;
		if (--s->pins[k].count == 0) {
			free(s->pins[k].chain_id);
			s->pins[k] = s->pins[--s->n_pins];
			unpinned = 1;
		}
		break;
	}
	pthread_mutex_unlock(&s->mu);
	if (unpinned)
		gc(s);
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp((*(struct image_info *const *)a)->id, (*(struct image_info *const *)b)->id);
}

int image_store_list(struct image_store *s, struct image_info ***out, size_t *n_out, pv_err_t **err)
{
	pthread_mutex_lock(&s->mu);
	size_t n = 0;
	for (struct rec *r = s->recs; r; r = r->next)
		n++;
	struct image_info **v = pv_xcalloc(n + 1, sizeof(*v));
	n = 0;
	for (struct rec *r = s->recs; r; r = r->next)
		v[n++] = info_from_rec(s, r);
	pthread_mutex_unlock(&s->mu);
	qsort(v, n, sizeof(*v), cmp_info);
	*out = v;
	*n_out = n;
	return 0;
}

/* ---- removal and garbage collection ---------------------------------------- */

static int referenced_locked(struct image_store *s, const char *digest, int chain)
{
	for (size_t i = 0; chain && i < s->n_pins; i++)
		if (!strcmp(image_digest_hex(s->pins[i].chain_id), digest))
			return 1;
	for (struct rec *r = s->recs; r; r = r->next) {
		if (chain ? !strcmp(image_digest_hex(r->chain_id), digest) : strarr_has(r->blobs, digest))
			return 1;
	}
	return 0;
}

static void sweep_dir(struct image_store *s, const char *sub, int chain)
{
	cleanup_free char *dir = pv_xasprintf("%s/%s", s->dir, sub);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		cleanup_free char *key = chain ? pv_xstrndup(de->d_name, strcspn(de->d_name, "."))
					       : pv_xasprintf("sha256:%s", de->d_name);
		if (!referenced_locked(s, key, chain))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static void clean_partials(struct image_store *s)
{
	cleanup_free char *dir = pv_xasprintf("%s/tmp", s->dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 8 && !strcmp(de->d_name + n - 8, ".partial"))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* Delete blobs and ext4 images no record references; skipped (and retried later) while pulls run. */
static void gc(struct image_store *s)
{
	if (pthread_rwlock_trywrlock(&s->gc) != 0) {
		__atomic_store_n(&s->gc_pending, 1, __ATOMIC_SEQ_CST);
		return;
	}
	__atomic_store_n(&s->gc_pending, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&s->mu);
	sweep_dir(s, "blobs/sha256", 0);
	sweep_dir(s, "ext4", 1);
	clean_partials(s);
	pthread_mutex_unlock(&s->mu);
	pthread_rwlock_unlock(&s->gc);
}

int image_store_remove(struct image_store *s, const char *name, int *removed, pv_err_t **err)
{
	pv_err_t *e = NULL;
	pthread_mutex_lock(&s->mu);
	struct rec *r = lookup_locked(s, name, &s->default_platform, 1, &e);
	int ret = 0, found = r != NULL;
	if (r) {
		cleanup_free char *p = pv_xasprintf("%s/records/%s.json", s->dir, image_digest_hex(r->id));
		if (unlink(p) < 0 && errno != ENOENT) {
			ret = pv_err_sys(err, PV_INTERNAL, "removing %s", p);
		} else {
			for (struct rec **pp = &s->recs; *pp; pp = &(*pp)->next)
				if (*pp == r) {
					*pp = r->next;
					break;
				}
			rec_free(r);
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (e) {
		pv_err_move(err, e);
		return -EINVAL;
	}
	if (ret < 0)
		return ret;
	if (removed)
		*removed = found;
	if (found)
		gc(s);
	return 0;
}

static uint64_t du_bytes, du_inodes;
static pthread_mutex_t du_mu = PTHREAD_MUTEX_INITIALIZER;

static int du_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	du_bytes += (uint64_t)st->st_blocks * 512;
	du_inodes++;
	return 0;
}

int image_store_usage(struct image_store *s, uint64_t *bytes, uint64_t *inodes, pv_err_t **err)
{
	pthread_mutex_lock(&du_mu);
	du_bytes = du_inodes = 0;
	int r = nftw(s->dir, du_visit, 16, FTW_PHYS);
	uint64_t b = du_bytes, n = du_inodes;
	pthread_mutex_unlock(&du_mu);
	if (r != 0)
		return pv_err_sys(err, PV_INTERNAL, "measuring %s", s->dir);
	*bytes = b;
	*inodes = n;
	return 0;
}
