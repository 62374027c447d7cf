/* CRI ImageService: decode, call cri/image/store.h, encode. */
#include "image_service.h"

#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "daemon.h"
#include "handlers.h"
#include "image/store.h"
#include "util.h"

int cri_image_service_init(struct pv_daemon *d, pv_err_t **err)
{
	struct image_store *s;
	if (image_store_open(d->cfg->root_dir, d->cfg->image, &s, err) < 0)
		return -1;
	d->images = s;
	return 0;
}

void cri_image_service_fini(struct pv_daemon *d)
{
	image_store_close(d->images);
	d->images = NULL;
}

static struct image_store *store_of(struct cri_call *call, pv_err_t **err)
{
	struct image_store *s = cri_call_daemon(call)->images;
	if (!s)
		pv_err_set(err, PV_UNAVAILABLE, EAGAIN, "image store is not open");
	return s;
}

static char **arena_strv(struct cri_call *call, char **v, size_t *n)
{
	size_t k = 0;
	while (v && v[k])
		k++;
	char **out = cri_call_alloc(call, (k + 1) * sizeof(char *));
	for (size_t i = 0; i < k; i++)
		out[i] = cri_call_strdup(call, v[i]);
	*n = k;
	return out;
}

static Runtime__V1__Image *encode_image(struct cri_call *call, const struct image_info *i)
{
	Runtime__V1__Image *m = cri_call_new(call, Runtime__V1__Image);
	runtime__v1__image__init(m);
	m->id = cri_call_strdup(call, i->id);
	m->repo_tags = arena_strv(call, i->repo_tags, &m->n_repo_tags);
	m->repo_digests = arena_strv(call, i->repo_digests, &m->n_repo_digests);
	m->size = i->size;
	if (i->has_uid) {
		m->uid = cri_call_new(call, Runtime__V1__Int64Value);
		runtime__v1__int64_value__init(m->uid);
		m->uid->value = i->uid;
	}
	m->username = cri_call_strdup(call, i->username ? i->username : "");
	m->spec = cri_call_new(call, Runtime__V1__ImageSpec);
	runtime__v1__image_spec__init(m->spec);
	m->spec->image = cri_call_strdup(call, i->id);
	return m;
}

static const char *spec_image(const Runtime__V1__ImageSpec *spec)
{
	return spec && spec->image ? spec->image : "";
}

int cri_image_list(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err)
{
	const Runtime__V1__ListImagesRequest *rq = (const Runtime__V1__ListImagesRequest *)req;
	struct image_store *s = store_of(call, err);
	if (!s)
		return -1;
	Runtime__V1__ListImagesResponse *out = cri_call_new(call, Runtime__V1__ListImagesResponse);
	runtime__v1__list_images_response__init(out);
	const char *filter = rq->filter ? spec_image(rq->filter->image) : "";
	if (*filter) {
		struct image_info *i = NULL;
		pv_err_t *e = NULL;
		if (image_store_resolve(s, filter, &i, &e) == 0) {
			out->images = cri_call_alloc(call, sizeof(*out->images));
			out->images[0] = encode_image(call, i);
			out->n_images = 1;
			image_info_free(i);
		}
		pv_err_free(e); /* a filter that matches nothing is an empty list */
	} else {
		struct image_info **v;
		size_t n;
		if (image_store_list(s, &v, &n, err) < 0)
			return -1;
		out->images = cri_call_alloc(call, (n + 1) * sizeof(*out->images));
		for (size_t k = 0; k < n; k++)
			out->images[k] = encode_image(call, v[k]);
		out->n_images = n;
		image_info_list_free(v, n);
	}
	*resp = &out->base;
	return 0;
}

int cri_image_status(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err)
{
	const Runtime__V1__ImageStatusRequest *rq = (const Runtime__V1__ImageStatusRequest *)req;
	struct image_store *s = store_of(call, err);
	if (!s)
		return -1;
	const char *name = spec_image(rq->image);
	if (!*name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "image status: no image given");
	Runtime__V1__ImageStatusResponse *out = cri_call_new(call, Runtime__V1__ImageStatusResponse);
	runtime__v1__image_status_response__init(out);
	struct image_info *i = NULL;
	pv_err_t *e = NULL;
	/* With a runtime handler, only an image of a platform that handler runs is "present":
	 * kubelet then pulls the right one (docs/arm64.md). */
	const char *handler = rq->image && rq->image->runtime_handler ? rq->image->runtime_handler : "";
	struct image_platform want[IMAGE_PLATFORMS_MAX];
	int n_want = *handler ? cri_pull_platforms(cri_call_daemon(call), handler, NULL, want, IMAGE_PLATFORMS_MAX, err)
			      : 0;
	if (n_want < 0)
		return -1;
	int r = image_store_resolve_for(s, name, want, (size_t)n_want, &i, &e);
	if (r == 0 && *handler && cri_handler_check_image(cri_call_daemon(call), handler, i, NULL) < 0) {
		image_info_free(i);
		i = NULL;
		r = pv_err_set(&e, PV_NOT_FOUND, ENOENT, "no image for this handler's platform");
	}
	if (r < 0) {
		if (e->status != PV_NOT_FOUND) {
			pv_err_move(err, e);
			return -1;
		}
		pv_err_free(e); /* unknown image: OK with image unset, like containerd */
	} else {
		out->image = encode_image(call, i);
		if (rq->verbose) {
			cleanup_free char *info = pv_xasprintf("{\"chainID\":\"%s\",\"ext4\":\"%s\",\"platform\":\"%s\"}",
							       i->chain_id, i->ext4_path, i->platform);
			out->n_info = 1;
			out->info = cri_call_alloc(call, sizeof(*out->info));
			out->info[0] = cri_call_new(call, Runtime__V1__ImageStatusResponse__InfoEntry);
			runtime__v1__image_status_response__info_entry__init(out->info[0]);
			out->info[0]->key = cri_call_strdup(call, "info");
			out->info[0]->value = cri_call_strdup(call, info);
		}
		image_info_free(i);
	}
	*resp = &out->base;
	return 0;
}

/* "auth" is base64("user:password"); decoded into *user / *pass. */
static int decode_auth(const char *b64, char **user, char **pass, pv_err_t **err)
{
	size_t n = strlen(b64);
	cleanup_free unsigned char *buf = pv_xcalloc(1, n + 4);
	size_t len = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		char c = b64[i];
		int v;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+' || c == '-')
			v = 62;
		else if (c == '/' || c == '_')
			v = 63;
		else if (c == '=' || c == '\n')
			continue;
		else
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "auth: not base64");
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[len++] = (acc >> bits) & 0xff;
		}
	}
	buf[len] = '\0';
	char *colon = strchr((char *)buf, ':');
	if (!colon || memchr(buf, '\0', len))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "auth: want base64 of user:password");
	*user = pv_xstrndup((char *)buf, colon - (char *)buf);
	*pass = pv_xstrdup(colon + 1);
	explicit_bzero(buf, len);
	return 0;
}

int cri_image_pull(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err)
{
	const Runtime__V1__PullImageRequest *rq = (const Runtime__V1__PullImageRequest *)req;
	struct image_store *s = store_of(call, err);
	if (!s)
		return -1;
	const char *name = spec_image(rq->image);
	struct registry_auth auth = { 0 }, *ap = NULL;
	cleanup_free char *user = NULL, *pass = NULL;
	if (rq->auth) {
		const Runtime__V1__AuthConfig *a = rq->auth;
		if (a->auth && *a->auth) {
			if (decode_auth(a->auth, &user, &pass, err) < 0)
				return -1;
			auth.username = user;
			auth.password = pass;
		} else {
			auth.username = a->username;
			auth.password = a->password;
		}
		auth.identity_token = a->identity_token;
		auth.registry_token = a->registry_token;
		ap = &auth;
	}
	/* Which platform of a multi-arch image: the pod's runtime handler (docs/arm64.md). */
	struct image_platform want[IMAGE_PLATFORMS_MAX];
	int n_want = cri_pull_platforms(cri_call_daemon(call), rq->image ? rq->image->runtime_handler : NULL,
					rq->sandbox_config, want, IMAGE_PLATFORMS_MAX, err);
	if (n_want < 0)
		return -1;
	cleanup_free char *id = NULL;
	int r = image_store_pull_for(s, name, ap, want, (size_t)n_want, &id, err);
	if (pass)
		explicit_bzero(pass, strlen(pass));
	if (r < 0)
		return r;
	Runtime__V1__PullImageResponse *out = cri_call_new(call, Runtime__V1__PullImageResponse);
	runtime__v1__pull_image_response__init(out);
	out->image_ref = cri_call_strdup(call, id);
	*resp = &out->base;
	return 0;
}

int cri_image_remove(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err)
{
	const Runtime__V1__RemoveImageRequest *rq = (const Runtime__V1__RemoveImageRequest *)req;
	struct image_store *s = store_of(call, err);
	if (!s)
		return -1;
	const char *name = spec_image(rq->image);
	if (!*name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "remove image: no image given");
	if (image_store_remove(s, name, NULL, err) < 0)
		return -1;
	Runtime__V1__RemoveImageResponse *out = cri_call_new(call, Runtime__V1__RemoveImageResponse);
	runtime__v1__remove_image_response__init(out);
	*resp = &out->base;
	return 0;
}

int cri_image_fs_info(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err)
{
	struct image_store *s = store_of(call, err);
	if (!s)
		return -1;
	uint64_t bytes, inodes;
	if (image_store_usage(s, &bytes, &inodes, err) < 0)
		return -1;
	Runtime__V1__FilesystemUsage *u = cri_call_new(call, Runtime__V1__FilesystemUsage);
	runtime__v1__filesystem_usage__init(u);
	u->timestamp = pv_now_realtime_ns();
	u->fs_id = cri_call_new(call, Runtime__V1__FilesystemIdentifier);
	runtime__v1__filesystem_identifier__init(u->fs_id);
	u->fs_id->mountpoint = cri_call_strdup(call, image_store_dir(s));
	u->used_bytes = cri_call_new(call, Runtime__V1__UInt64Value);
	runtime__v1__uint64_value__init(u->used_bytes);
	u->used_bytes->value = bytes;
	u->inodes_used = cri_call_new(call, Runtime__V1__UInt64Value);
	runtime__v1__uint64_value__init(u->inodes_used);
	u->inodes_used->value = inodes;
	Runtime__V1__ImageFsInfoResponse *out = cri_call_new(call, Runtime__V1__ImageFsInfoResponse);
	runtime__v1__image_fs_info_response__init(out);
	out->image_filesystems = cri_call_alloc(call, sizeof(*out->image_filesystems));
	out->image_filesystems[0] = u;
	out->n_image_filesystems = 1;
	*resp = &out->base;
	return 0;
}
