/*
 * known — the sources a relay has seen: per (source, epoch), the route back
 * to it (the envelope of its latest message) and the link types of its
 * interfaces (from HELLO, for FILTER and flowhash). Routing state only,
 * bounded: the least recently heard source makes room.
 */
#ifndef TAPMESH_KNOWN_H
#define TAPMESH_KNOWN_H

#include <stdbool.h>
#include <stdint.h>

#include "frames.h"
#include "wire.h"

typedef struct {
    char id[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    route_t route;
    bool hello; /* link types known */
    unsigned nifaces;
    uint16_t linktype[WIRE_IFACES_MAX];
    int64_t heard_ms;
    uint32_t generation; /* changes when the slot is reused */
} known_t;

typedef struct known_table_t known_table_t;

known_table_t *known_new(size_t capacity);
void known_destroy(known_table_t **self_p);

/* The entry of (source, epoch), made (evicting the least recently heard)
 * when `create`; NULL when absent and not created, or out of memory. */
known_t *known_get(known_table_t *self, const char *id, uint64_t epoch, bool create);

/* The entry in slot `index` if it still has `generation`, else NULL. */
known_t *known_at(known_table_t *self, uint32_t index, uint32_t generation);
uint32_t known_index(const known_table_t *self, const known_t *k);

#endif
