/*
 * The pod's sysctls (PodSandboxConfig.linux.sysctls), written once in the VM when the sandbox
 * is created. The VM is the pod, so every sysctl is the pod's own: net.* in the VM's network
 * namespace (which every container shares), IPC ones (kernel.shm*, kernel.msg*, kernel.sem,
 * fs.mqueue.*) in the VM's IPC namespace (which every container shares), and the rest in the
 * pod's own kernel. UTS ones (kernel.domainname) are copied into each container's UTS namespace
 * when it is made.
 */
#include "sysctl.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * "net.ipv4.ip_forward" -> "/proc/sys/net/ipv4/ip_forward". A name with a '/' is in the form
 * kubelet uses for components that contain dots ("net.ipv4.conf.eth0/100.forwarding" for
 * interface eth0.100): there '.' separates and '/' stands for a literal dot.
 */
int sysctl_path(const char *key, char *out, size_t outlen, pv_err_t **err)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0 || n > 255)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "sysctl name must be 1..255 characters");
	int len = snprintf(out, outlen, "/proc/sys/");
	if (len < 0 || (size_t)len + n >= outlen)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "sysctl name too long");
	char *p = out + len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c <= ' ' || c >= 0x7f)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "sysctl \"%.64s\": invalid character", key);
		p[i] = c == '.' ? '/' : c == '/' ? '.' : (char)c;
	}
	p[n] = 0;
	/* No empty, "." or ".." component may walk out of /proc/sys. */
	for (char *c = p; *c;) {
		char *e = strchrnul(c, '/');
		size_t cl = (size_t)(e - c);
		if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "sysctl \"%.64s\": invalid name", key);
		c = *e ? e + 1 : e;
	}
	if (p[n - 1] == '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "sysctl \"%.64s\": invalid name", key);
	return 0;
}

int sysctl_apply(const char *key, const char *value, pv_err_t **err)
{
	char path[320];
	if (sysctl_path(key, path, sizeof(path), err) < 0)
		return -1;
	cleanup_close int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return pv_err_set(err, PV_INVALID_ARGUMENT, ENOENT, "sysctl %s: the pod's kernel has no such setting",
					  key);
		return pv_err_sys(err, PV_INVALID_ARGUMENT, "sysctl %s", key);
	}
	size_t len = strlen(value);
	ssize_t w = write(fd, value, len);
	if (w < 0)
		return pv_err_sys(err, PV_INVALID_ARGUMENT, "sysctl %s = \"%.64s\"", key, value);
	if ((size_t)w != len)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "sysctl %s: short write", key);
	return 0;
}
