# Guest kernel (kernel/build.sh). Included by the top-level Makefile; uses $(BUILD).
# build.sh keys its own cache on podvisor.config, itself and the linux-source
# version, so it runs every time: a hit returns in well under a second and
# leaves the output's mtime alone, so dependents rebuild only on a real change.
# (A double-colon rule without prerequisites always runs its recipe; make then
# re-checks the file's mtime, unlike a .PHONY target.)

.PHONY: kernel
kernel: $(BUILD)/kernel/vmlinux

$(BUILD)/kernel/vmlinux::
	bash kernel/build.sh $@

# The arm64 guest kernel (an uncompressed Image for QEMU virt), cross-compiled and
# cached the same way under its own key.
.PHONY: kernel-arm64
kernel-arm64: $(BUILD)/kernel/arm64/Image

$(BUILD)/kernel/arm64/Image::
	bash kernel/build.sh arm64 $@

GUEST_FILES += $(BUILD)/kernel/arm64/Image
