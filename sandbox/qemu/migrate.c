/*
 * Templates on QEMU (docs/sandbox.md, "Templates"): save a template VM's device state with
 * a migration to a file, and load it into a clone started with -incoming defer.
 *
 * The guest RAM is a memory-backend-file (the command line, cmdline.c): share=on in the
 * template, share=off (a private copy-on-write mapping) in a clone. The x-ignore-shared
 * capability leaves that RAM out of the stream; it must be on at both ends (a clone that
 * loads with it off fails: "Capability x-ignore-shared is off, but received capability is
 * on"), which is why a clone starts with -incoming defer and gets it over QMP first.
 * QEMU 7.2 has no file: migration URI: the template writes through exec:, the clone reads
 * an fd it inherited (fd:N), so it runs no shell.
 */
#include "vmm_impl.h"
#include "qemu.h"
#include "qmp.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int set_capabilities(struct qmp *q, int timeout_ms, pv_err_t **err)
{
	json_t *caps = json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability", "x-ignore-shared", "state",
				 1, "capability", "events", "state", 1);
	return sandbox_qmp_execute(q, "migrate-set-capabilities", caps, timeout_ms, NULL, err);
}

/* Wait for the MIGRATION event that ends a migration: 0 on "completed". */
static int wait_migration(struct qmp *q, int timeout_ms, pv_err_t **err)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		int64_t left = (deadline - pv_now_monotonic_ns()) / 1000000;
		json_t *data = NULL;
		if (sandbox_qmp_wait_event(q, "MIGRATION", NULL, NULL, left > 0 ? (int)left : 1, &data, err) < 0)
			return -1;
		const char *st = json_string_value(json_object_get(data, "status"));
		cleanup_free char *status = pv_xstrdup(st ? st : "");
		json_decref(data);
		if (!strcmp(status, "completed"))
			return 0;
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
			json_t *info = NULL;
			const char *why = NULL;
			if (sandbox_qmp_execute(q, "query-migrate", NULL, 2000, &info, NULL) == 0)
				why = json_string_value(json_object_get(info, "error-desc"));
			pv_err_set(err, PV_INTERNAL, EIO, "migration %s: %s", status, why ? why : "no reason given");
			json_decref(info);
			return -1;
		}
	}
}

/* A path as one word of a /bin/sh command line. */
static char *sh_quote(const char *s)
{
	size_t n = 3;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *out = pv_xmalloc(n), *o = out;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

int sandbox_qemu_template_save(struct vmm *vm, struct qmp *q, int timeout_ms, pv_err_t **err)
{
	cleanup_free char *tmp = pv_xasprintf("%s/%s.tmp", vm->cfg.template_out, SANDBOX_TEMPLATE_STATE);
	cleanup_free char *final = pv_xasprintf("%s/%s", vm->cfg.template_out, SANDBOX_TEMPLATE_STATE);
	cleanup_free char *quoted = sh_quote(tmp);
	cleanup_free char *uri = pv_xasprintf("exec:cat > %s", quoted);
	unlink(tmp);
	if (set_capabilities(q, timeout_ms, err) < 0 || sandbox_qmp_execute(q, "stop", NULL, timeout_ms, NULL, err) < 0 ||
	    sandbox_qmp_execute(q, "migrate", json_pack("{s:s}", "uri", uri), timeout_ms, NULL, err) < 0 ||
	    wait_migration(q, timeout_ms, err) < 0) {
		pv_err_prefix(err, "save template state to %s", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, final) < 0) {
		int r = pv_err_sys(err, PV_INTERNAL, "rename %s", tmp);
		unlink(tmp);
		return r;
	}
	return 0;
}

int sandbox_qemu_incoming(struct qmp *q, int state_fd, int timeout_ms, pv_err_t **err)
{
	cleanup_free char *uri = pv_xasprintf("fd:%d", state_fd);
	if (set_capabilities(q, timeout_ms, err) < 0 ||
	    sandbox_qmp_execute(q, "migrate-incoming", json_pack("{s:s}", "uri", uri), timeout_ms, NULL, err) < 0)
		return -1;
	/* QEMU 7.2 exits when the load fails: the wait then ends with the monitor's EOF. */
	if (wait_migration(q, timeout_ms, err) < 0)
		return -1;
	/* The template was paused when saved, and so is the clone now: run it (cont returns
	 * once the vCPUs run). */
	return sandbox_qmp_execute(q, "cont", NULL, timeout_ms, NULL, err);
}
