/* graph: topological ordering and cycle reporting. */
#include "core/graph.h"

#include "core/lib/xalloc.h"

#include <stdlib.h>
#include <string.h>

void graph_init(struct graph *g, size_t n)
{
    g->n = n;
    g->deps = xcalloc(n ? n : 1, sizeof *g->deps);
    g->ndeps = xcalloc(n ? n : 1, sizeof *g->ndeps);
    g->caps = xcalloc(n ? n : 1, sizeof *g->caps);
}

void graph_release(struct graph *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->deps[i]);
    free(g->deps);
    free(g->ndeps);
    free(g->caps);
    memset(g, 0, sizeof *g);
}

void graph_add(struct graph *g, size_t node, size_t dep)
{
    for (size_t i = 0; i < g->ndeps[node]; i++)
        if (g->deps[node][i] == dep)
            return;
    XGROW(g->deps[node], g->caps[node], g->ndeps[node] + 1);
    g->deps[node][g->ndeps[node]++] = dep;
}

/* find one cycle by depth-first search from nodes left over by Kahn's pass */
static int find_cycle(const struct graph *g, const unsigned char *done, size_t *cycle,
                      size_t *ncycle)
{
    unsigned char *color = xcalloc(g->n, 1); /* 0 new, 1 on stack, 2 finished */
    size_t *stack = xcalloc(g->n, sizeof *stack), *it = xcalloc(g->n, sizeof *it);
    int found = 0;
    for (size_t s = 0; s < g->n && !found; s++) {
        if (done[s] || color[s])
            continue;
        size_t sp = 0;
        stack[sp] = s;
        it[sp] = 0;
        color[s] = 1;
        sp++;
        while (sp && !found) {
            size_t v = stack[sp - 1];
            if (it[sp - 1] < g->ndeps[v]) {
                size_t w = g->deps[v][it[sp - 1]++];
                if (done[w] || color[w] == 2)
                    continue;
                if (color[w] == 1) {
                    size_t k = sp;
                    while (k > 0 && stack[k - 1] != w)
                        k--;
                    *ncycle = 0;
                    for (size_t j = k - 1; j < sp; j++)
                        cycle[(*ncycle)++] = stack[j];
                    found = 1;
                    break;
                }
                color[w] = 1;
                stack[sp] = w;
                it[sp] = 0;
                sp++;
            } else {
                color[v] = 2;
                sp--;
            }
        }
    }
    free(color);
    free(stack);
    free(it);
    return found;
}

int graph_order(const struct graph *g, size_t *order, size_t *cycle, size_t *ncycle)
{
    size_t *pending = xcalloc(g->n ? g->n : 1, sizeof *pending);
    unsigned char *done = xcalloc(g->n ? g->n : 1, 1);
    for (size_t i = 0; i < g->n; i++)
        pending[i] = g->ndeps[i];
    size_t k = 0;
    /* repeated passes in index order keep the result stable and readable */
    for (int progress = 1; progress && k < g->n;) {
        progress = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (done[i])
                continue;
            size_t left = 0;
            for (size_t d = 0; d < g->ndeps[i]; d++)
                if (!done[g->deps[i][d]])
                    left++;
            if (!left) {
                done[i] = 1;
                order[k++] = i;
                progress = 1;
            }
        }
    }
    int rc = 0;
    if (k < g->n) {
        rc = -1;
        if (cycle && ncycle)
            find_cycle(g, done, cycle, ncycle);
    }
    free(pending);
    free(done);
    return rc;
}
