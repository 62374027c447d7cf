/* CRI ImageService handlers of podvisord, on top of cri/image/store.h. */
#ifndef PV_CRI_IMAGE_SERVICE_H
#define PV_CRI_IMAGE_SERVICE_H

#include "server.h"
#include "error.h"

struct pv_daemon;

/* Open the store at d->cfg->root_dir with the "image" config section; sets d->images. */
int cri_image_service_init(struct pv_daemon *d, pv_err_t **err);
void cri_image_service_fini(struct pv_daemon *d);

int cri_image_list(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err);
int cri_image_status(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err);
int cri_image_pull(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err);
int cri_image_remove(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err);
int cri_image_fs_info(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err);

#endif
