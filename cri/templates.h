/* VM templates, podvisord's side: which template a pod clones, building it when needed
 * (cri/templates.c; docs/sandbox.md, "Templates"). */
#ifndef PV_CRI_TEMPLATES_H
#define PV_CRI_TEMPLATES_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct pv_daemon;
struct pv_config;
struct shim_spawn_opts;

/* runtime.templates (default true). */
bool cri_templates_enabled(const struct pv_config *cfg);
/* Make <state_dir>/templates (a tmpfs) and build the template of `def` (a pod of the default
 * handler without limits; copied) in the background. With templates off: only remove what a
 * previous run left. */
int cri_templates_init(struct pv_daemon *d, const struct shim_spawn_opts *def, bool net, pv_err_t **err);
/* Stop builds in flight and remove every template: nothing is left in the state dir. */
void cri_templates_fini(struct pv_daemon *d);
/* The directory of a ready template for a pod VM spawned with `o` (guest assets, QEMU,
 * accelerator, architecture, vCPUs, memory) with a NIC or not (heap), building it first when
 * this is the first pod of the shape; NULL: the pod boots (templates off, an arm64 guest, the
 * build failed, or the template was damaged: logged). */
char *cri_template_for(struct pv_daemon *d, const struct shim_spawn_opts *o, bool net);
/* A pod's clone of `dir` failed and it booted instead: drop the template (rebuilt next time). */
void cri_template_failed(struct pv_daemon *d, const char *dir, const char *why);

#endif
