/* podvisord --check: print, one line each, whether every requirement of a pod is met. */
#ifndef PV_CRI_CHECK_H
#define PV_CRI_CHECK_H

#include <stdio.h>

struct pv_daemon;

/* d: after cri_runtime_info_init() and cri_net_init(). 0 if all is met, -1 if one is missing. */
int cri_check_run(struct pv_daemon *d, FILE *out);

#endif
