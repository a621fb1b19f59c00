/* process.service: placeholder until the provider lands. */
#include "core/provider.h"

static int ph_create(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)c;
    (void)r;
    return err_set(e, PE_INTERNAL, NULL, "process.service is not implemented yet");
}

static int ph_remove(const struct prov_call *c, struct err *e)
{
    (void)c;
    (void)e;
    return 0;
}

const struct provider prov_process_service = {
    .type = "process.service",
    .create = ph_create,
    .read = ph_create,
    .update = ph_create,
    .remove = ph_remove,
};
