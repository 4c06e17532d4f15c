import time, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.decomposition import PCA
from sklearn.semi_supervised import LabelSpreading
from tiedae.data import load_fashion_mnist, stratified_subset
s = load_fashion_mnist(); lab = stratified_subset(s.y_train, 500, 1)
X = s.x_train.reshape(len(s.x_train), -1); V = s.x_valid.reshape(len(s.x_valid), -1)
for C in (0.01, 0.03, 0.1, 0.3, 1.0):
    t=time.time(); m = LogisticRegression(C=C, max_iter=1000).fit(X[lab], s.y_train[lab]); print("logreg C", C, m.score(V, s.y_valid), f"{time.time()-t:.1f}s", flush=True)
for k in (30, 50):
    t=time.time(); p = PCA(k, random_state=1).fit(X); Z=p.transform(X); ZV=p.transform(V); print("pca", k, f"{time.time()-t:.1f}s")
    for C in (0.01, 0.1, 1.0):
        m = LogisticRegression(C=C, max_iter=1000).fit(Z[lab], s.y_train[lab]); print(" pca-logreg", k, C, m.score(ZV, s.y_valid), flush=True)
    for nn in (10, 20):
      for a in (0.2, 0.8):
        t=time.time(); y = np.full(len(Z), -1); y[lab] = s.y_train[lab]
        ls = LabelSpreading(kernel="knn", n_neighbors=nn, alpha=a, max_iter=100).fit(Z, y)
        print(" labelspreading", k, nn, a, ls.score(ZV, s.y_valid), f"{time.time()-t:.1f}s", flush=True)
