"""What bfloat16 matrix products would save the ladder (issue 13's lead; not an option of tiedae).

Times the tied and untied ladder of ``conf/method`` as ``python -m tiedae.objectives.cost`` does
(compiled steps, 500 labels), either as tiedae runs it (float32) or with every matrix product
of its encoder and decoder done in bfloat16 (inputs and kernels cast, the product cast back to
float32; everything else float32), which this CPU's AVX-512 BF16 runs 1.6-1.8x faster per
product (products.py).

    PYTHONPATH=. .venv/bin/python experiments/bench/bfloat16/ladder_matmuls.py \
        float32|bfloat16 [--steps 100]
"""

import sys

import tensorflow as tf

from tiedae.objectives import cost, ladder


def bfloat16_products() -> None:
    def product(a, b, transpose_b=False):
        a, b = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
        return tf.cast(tf.matmul(a, b, transpose_b=transpose_b), tf.float32)

    def preactivation(self, inputs):
        return product(inputs, self.kernel)

    def map_down(self, level, z_hat):
        if self.tied:
            return product(z_hat, self.layers[level].kernel, transpose_b=True)
        return product(z_hat, self.down[level])

    ladder.LadderDense.preactivation = preactivation
    ladder.Ladder.map_down = map_down


if __name__ == "__main__":
    precision, rest = sys.argv[1], sys.argv[2:]
    if precision == "bfloat16":
        bfloat16_products()
    elif precision != "float32":
        sys.exit(f"precision {precision!r}: give float32 or bfloat16")
    cost.main(["--methods", "ladder_tied,ladder_untied", *rest])
