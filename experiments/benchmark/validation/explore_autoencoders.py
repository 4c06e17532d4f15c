"""Exploration on the VALIDATION set: pretrain AEs, then several heads, 500 labels seed 1."""
import sys, time, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, keras
from omegaconf import OmegaConf
from tiedae.data import load_fashion_mnist, stratified_subset
from tiedae.pretrain import pretrain_autoencoder, pretrain_greedy, pretrained_layers
from tiedae.classify import train_classifier
from tiedae.training import FitSettings, configure_tensorflow

configure_tensorflow(2, False)
splits = load_fashion_mnist()
labeled = stratified_subset(splits.y_train, 500, 1)

def ae(sizes, tied=True, epochs=10, opt="sgd", lr=1.5, noise="none", rate=0.0, init="glorot_uniform", greedy=False, heads_from=1):
    m = OmegaConf.create(dict(sizes=sizes, tied=tied, activation="selu", kernel_initializer=init))
    p = OmegaConf.create(dict(loss="binary_crossentropy", optimizer=opt, learning_rate=lr, input_noise=noise, noise_rate=rate, code_optimizer="nadam", code_learning_rate=1e-3))
    t = time.time()
    fn = pretrain_greedy if greedy else pretrain_autoencoder
    a, h = fn(splits, m, p, FitSettings(epochs=epochs, seed=1, verbose=0))
    print(f"AE {sizes} tied={tied} greedy={greedy} {opt} {lr} {noise} {rate} {init}: {h.last} {time.time()-t:.0f}s", flush=True)
    return m, pretrained_layers(a), heads_from

def head(m, layers, reuse, freeze, lr=1e-3, frozen_epochs=None, ft_lr=None):
    c = OmegaConf.create(dict(freeze=freeze, optimizer="nadam", learning_rate=lr, frozen_epochs=frozen_epochs, finetune_learning_rate=ft_lr))
    t = time.time()
    clf, h = train_classifier(splits, labeled, m, c, FitSettings(epochs=200, seed=1, patience=10, verbose=0), pretrained=layers, reuse=reuse)
    acc = h.epochs[h.best_epoch]["val_accuracy"]
    print(f"    reuse={reuse} freeze={freeze} lr={lr} frozen_epochs={frozen_epochs} ft_lr={ft_lr}: val_acc {acc:.4f} (best {h.best_epoch}/{len(h.epochs)} ep, {time.time()-t:.0f}s)", flush=True)
    return acc

for spec in sys.argv[1:]:
    kw = eval(f"dict({spec})")
    m, layers, first = ae(**kw)
    for reuse in range(first, len(m.sizes) + 1):
        head(m, layers, reuse, True)
        head(m, layers, reuse, False)
        head(m, layers, reuse, False, frozen_epochs=50, ft_lr=1e-4)
