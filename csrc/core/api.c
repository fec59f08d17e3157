/* api.c -- the table of entry points the extension calls (sad_api.h). */
#include "sad_api.h"

static const struct sad_api table = {
    .size = sizeof(struct sad_api),
    .tape_len = sad_tape_len,
    .truncate = sad_truncate,
    .tape_grew = sad_tape_grew,
    .tape_refused = sad_tape_refused,
    .s1 = sad_s1,
    .s2 = sad_s2,
    .load = sad_load,
    .store = sad_store,
    .ew_is_unary = sad_ew_is_unary,
    .ew_partials_read = sad_ew_partials_read,
    .ew_slots = sad_ew_slots,
    .ew_tangent = sad_ew_tangent,
    .ew_tangent_duals = sad_ew_tangent_duals,
    .ew_primal_nan = sad_ew_primal_nan,
    .ew_reverse_through = sad_ew_reverse_through,
    .ew_reverse_summed = sad_ew_reverse_summed,
    .reduce = sad_reduce,
    .reduce_lazy = sad_reduce_lazy,
    .outer = sad_outer,
    .axpy = sad_axpy,
    .axpy_tangents = sad_axpy_tangents,
    .slot_new = sad_slot_new,
    .slot_bind = sad_slot_bind,
    .same_elements = sad_same_elements,
    .vec_extend = sad_vec_extend,
    .vpusha = sad_vpusha,
    .vcopy = sad_vcopy,
};

const struct sad_api *sad_api(void) { return &table; }
