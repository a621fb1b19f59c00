/* graph: a dependency graph over n nodes (0..n-1): topological order and
 * cycle detection that names every member of a cycle. Pure; no I/O. */
#ifndef PRENV_GRAPH_H
#define PRENV_GRAPH_H

#include <stddef.h>

struct graph {
    size_t n;
    size_t **deps;  /* deps[i]: the nodes i depends on */
    size_t *ndeps;
    size_t *caps;
};

void graph_init(struct graph *g, size_t n);
void graph_release(struct graph *g);
/* graph_add: node depends on dep (duplicates are ignored). */
void graph_add(struct graph *g, size_t node, size_t dep);
/* graph_order: fill order[n] so every node comes after its dependencies;
 * ties keep index order. Returns 0, or -1 with cycle[*ncycle] set to the
 * members of one cycle in dependency order (a -> b means a depends on b). */
int graph_order(const struct graph *g, size_t *order, size_t *cycle, size_t *ncycle);

#endif
