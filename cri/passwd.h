/* Users and groups of an image, read from /etc/passwd and /etc/group inside its ext4 (no mount). */
#ifndef PV_CRI_PASSWD_H
#define PV_CRI_PASSWD_H

#include "error.h"
#include "spec.h"

struct pv_passwd;

/* Missing files are fine (an image without /etc/passwd): lookups then fail. */
int pv_passwd_load_ext4(const char *ext4_path, struct pv_passwd **out, pv_err_t **err);
/* Parse passwd and group text directly (either may be NULL). */
struct pv_passwd *pv_passwd_parse(const char *passwd, const char *group);
void pv_passwd_free(struct pv_passwd *pw);
/* The lookup table spec_build_process() wants, backed by pw. */
struct spec_ids pv_passwd_ids(struct pv_passwd *pw);

#endif
