# e2e/: test clients built with Debian's toolchains (not podvisor code): the SPDY client of the
# streaming tests, on Debian's github.com/docker/spdystream (golang-github-docker-spdystream-dev),
# built offline from /usr/share/gocode.
$(BUILD)/bin/pv-spdyclient: e2e/spdyclient/main.go
	@mkdir -p $(dir $@)
	GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off GOCACHE=$(abspath $(BUILD))/gocache \
		go build -o $@ ./e2e/spdyclient
HOST_BINS += $(BUILD)/bin/pv-spdyclient
