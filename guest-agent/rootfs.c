/*
 * A container's rootfs disk is a qcow2 overlay the host made larger than the image's
 * ext4 (sparse: it costs the host nothing until written). Once mounted, the filesystem
 * is grown online to the disk, so the container has room to write.
 */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

/* From the kernel's fs/ext4/ext4.h (not in the uapi headers): grow to n blocks. */
#define AGENT_EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)

int rootfs_grow(const char *dev, const char *mountpoint, pv_err_t **err)
{
	cleanup_close int dfd = open(dev, O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open %s", dev);
	uint64_t dev_bytes = 0;
	if (ioctl(dfd, BLKGETSIZE64, &dev_bytes) < 0)
		return pv_err_sys(err, PV_INTERNAL, "size of %s", dev);
	cleanup_close int mfd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open %s", mountpoint);
	struct statfs sf;
	if (fstatfs(mfd, &sf) < 0)
		return pv_err_sys(err, PV_INTERNAL, "statfs %s", mountpoint);
	uint64_t bsize = (uint64_t)sf.f_bsize;
	uint64_t want = dev_bytes / bsize;
	/* f_blocks leaves out the filesystem's own overhead: compare with some slack. */
	if (want <= (uint64_t)sf.f_blocks + 64)
		return 0;
	int64_t t0 = pv_now_monotonic_ns();
	if (ioctl(mfd, AGENT_EXT4_IOC_RESIZE_FS, &want) < 0)
		return pv_err_sys(err, PV_INTERNAL, "grow the filesystem on %s to %llu blocks", dev,
				  (unsigned long long)want);
	pv_debug("rootfs grown", "dev=%s bytes=%llu ms=%lld", dev, (unsigned long long)dev_bytes,
		 (long long)((pv_now_monotonic_ns() - t0) / 1000000));
	return 0;
}
