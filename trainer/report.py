"""What a finished run's predictions say, class by class: the confusion matrix, accuracy per
class and which test images were misclassified.

    report = classification_report(predictions, labels, class_names, keep=48)
"""

import torch


def classification_report(predictions: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...],
                          keep: int) -> dict:
    """`predictions`, `labels`: (N,) class indices. Rows of the confusion matrix are true classes.
    `misclassified` lists the first `keep` wrong images in test-set order."""
    pred, true = predictions.cpu(), labels.cpu()
    n = len(class_names)
    confusion = torch.bincount(true * n + pred, minlength=n * n).view(n, n)
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1)).tolist()
    wrong = (pred != true).nonzero().flatten()[:keep].tolist()
    return {"class_names": list(class_names), "confusion_matrix": confusion.tolist(),
            "per_class_acc": per_class, "test_acc": (pred == true).float().mean().item(),
            "misclassified": [{"k": k, "index": i, "true": int(true[i]), "pred": int(pred[i])}
                              for k, i in enumerate(wrong)]}
