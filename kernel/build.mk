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
