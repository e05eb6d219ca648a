/*
 * The wire form of errors (protocol.h), generated from the one table there.
 */
#include "actors/protocol.h"

aw_protocol_error_t aw_protocol_error(int err)
{
    switch (err) {
#define AW__PROTOCOL_CASE(name, code, status, message)                                                       \
    case AW_E##name:                                                                                         \
        return (aw_protocol_error_t){code, status, message};
        AW_PROTOCOL_ERROR_MAP(AW__PROTOCOL_CASE)
#undef AW__PROTOCOL_CASE
    default:
        return (aw_protocol_error_t){"internal", 503, aw_strerror(err)};
    }
}
