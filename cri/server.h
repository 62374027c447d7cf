/*
 * The CRI gRPC server's contract with the code behind each RPC.
 *
 * A handler decodes nothing and encodes nothing: it gets the unpacked
 * request, fills a response allocated from the call's arena (freed after
 * the reply is sent), and returns 0 — or a negative value with *err set,
 * whose status and message become the gRPC status. Handlers run on their
 * own thread, so a slow one (PullImage) never blocks the others.
 */
#ifndef PV_CRI_SERVER_H
#define PV_CRI_SERVER_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "error.h"
#include "proto/cri.pb-c.h"

struct pv_daemon;
struct cri_call;

/* Zeroed memory that lives until the reply has been sent. */
void *cri_call_alloc(struct cri_call *call, size_t size);
char *cri_call_strdup(struct cri_call *call, const char *s);
#define cri_call_new(call, type) ((type *)cri_call_alloc((call), sizeof(type)))

struct pv_daemon *cri_call_daemon(struct cri_call *call);
const char *cri_call_method(struct cri_call *call);

/* Server-streaming methods: send one message (0, or -1 once the client is gone). */
int cri_call_send(struct cri_call *call, const ProtobufCMessage *msg);
/* Streaming handlers: free everything allocated so far (nothing from it may be used after). */
void cri_call_reset_arena(struct cri_call *call);
/* True once the client cancelled or the server is shutting down. */
int cri_call_cancelled(struct cri_call *call);

typedef int (*cri_handler_fn)(struct cri_call *call, const ProtobufCMessage *req,
			      ProtobufCMessage **resp, pv_err_t **err);

struct cri_method {
	const char *path;                           /* "/runtime.v1.RuntimeService/Version" */
	const ProtobufCMessageDescriptor *request;  /* request type */
	cri_handler_fn handler;                     /* NULL: answered UNIMPLEMENTED */
	int server_streaming;
};

/* The table of every RPC of RuntimeService and ImageService (cri/methods.c). */
extern const struct cri_method cri_methods[];
extern const size_t cri_methods_count;
const struct cri_method *cri_method_find(const char *path);

/* ---- used by podvisord's main ---- */
struct cri_server;

/* Bind the unix socket (refusing if another server is live on it) and start serving. */
int cri_server_start(struct pv_daemon *d, const char *socket_path, int max_calls,
		     struct cri_server **out, pv_err_t **err);
/* Serve until cri_server_shutdown() is called and in-flight calls have finished. */
void cri_server_run(struct cri_server *s);
/* Thread-safe; no new calls are admitted, in-flight calls get `grace_ms` to finish. */
void cri_server_shutdown(struct cri_server *s, int grace_ms);
/* Destroys the server and removes the socket. */
void cri_server_free(struct cri_server *s);
#endif
