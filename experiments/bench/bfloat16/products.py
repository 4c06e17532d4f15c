"""One thread's matrix-product rate in float32 and bfloat16 at the ladder's shapes: ten chained
products of a (rows x width) batch by (width x width) kernels, in one traced function.

    PYTHONPATH=. .venv/bin/python experiments/bench/bfloat16/products.py
"""

import time

import tensorflow as tf

SHAPES = ((200, 1000), (200, 500), (32, 784), (1000, 1000))  # (rows, width)
CHAIN, REPEATS = 10, 30

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
for dtype in (tf.float32, tf.bfloat16):
    for rows, width in SHAPES:
        batch = tf.cast(tf.random.normal((rows, width)), dtype)
        kernels = [tf.cast(tf.random.normal((width, width)) * 0.03, dtype) for _ in range(CHAIN)]

        @tf.function
        def chained(x, kernels=kernels):
            for kernel in kernels:
                x = tf.matmul(x, kernel)
            return x

        chained(batch)
        start = time.perf_counter()
        for _ in range(REPEATS):
            chained(batch).numpy()
        seconds = time.perf_counter() - start
        rate = 2 * rows * width * width * CHAIN * REPEATS / seconds / 1e9
        print(f"{dtype.name:9s} {rows:5d} x {width:5d} by {width} x {width}: {rate:6.1f} GFLOP/s")
