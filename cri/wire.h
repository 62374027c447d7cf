/*
 * protobuf strings may carry NUL bytes; protobuf-c hands them to C as NUL-terminated
 * strings, so "abc\0xyz" would be read as "abc" (an id naming another pod, a path cut
 * short). This scan of a request's wire bytes finds them before anything decodes the
 * string as C text.
 */
#ifndef PV_CRI_WIRE_H
#define PV_CRI_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* INVALID_ARGUMENT naming the first string field of the message (desc) in buf that holds
 * a NUL byte, or that buf is not well-formed protobuf; 0 when every string is clean. */
int cri_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
			   pv_err_t **err);

#endif
