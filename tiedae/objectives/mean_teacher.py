"""Mean teacher (Tarvainen & Valpola 2017): a teacher whose weights are the exponential moving
average of the student's; the student's predictions on unlabeled images are pulled towards the
teacher's (mean squared error of the class probabilities, each under its own noise), with a
ramped-up weight. The teacher is the classifier evaluated and kept."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from tiedae.objectives.base import Batch, Objective, ObjectiveSettings, register, supervised_loss
from tiedae.schema import setting


@dataclass(frozen=True)
class MeanTeacherSettings(ObjectiveSettings):
    ema_decay: float = setting(0.99, minimum=0.0, below=1.0, says="in [0, 1)")
    weight: float = setting(10.0, minimum=0.0)
    ramp_up_epochs: float = setting(5, minimum=0.0)


@register("mean_teacher")
class MeanTeacher(Objective):
    """Hyperparameters: ``ema_decay`` in [0, 1) (the teacher's average), ``weight`` (λ of the
    consistency) and ``ramp_up_epochs``."""

    loss_names = ("loss", "labeled_loss", "consistency")

    settings = MeanTeacherSettings

    def build(self) -> keras.Model:
        student = super().build()
        self.student, self.student_encoder, self.student_head = student, self.encoder, self.head
        teacher = super().build()  # same shapes, new variables; the teacher is evaluated
        self.teacher_encoder, self.teacher_head = self.encoder, self.head
        self.encoder, self.head = self.student_encoder, self.student_head
        teacher.set_weights(student.get_weights())  # the optimizer never sees its variables
        self.teacher = teacher
        return teacher

    def start_from(self, pretrained) -> None:
        super().start_from(pretrained)  # into the student's encoder
        self.teacher.set_weights(self.student.get_weights())

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return list(self.student.trainable_variables)

    @property
    def variables(self) -> list[tf.Variable]:
        return [*super().variables, *self.student.non_trainable_variables]

    def teacher_forward(self, x: tf.Tensor) -> tf.Tensor:
        self.encoder, self.head = self.teacher_encoder, self.teacher_head
        try:
            probabilities, _ = self.forward(x)
        finally:
            self.encoder, self.head = self.student_encoder, self.student_head
        return probabilities

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y = labeled
        probabilities, _ = self.forward(x)
        labeled_loss = supervised_loss(y, probabilities)
        student, _ = self.forward(unlabeled)
        teacher = tf.stop_gradient(self.teacher_forward(unlabeled))
        consistency = tf.reduce_mean(tf.reduce_sum(tf.square(student - teacher), axis=-1))
        weight = float(self.section.weight) * self.ramp(float(self.section.ramp_up_epochs))
        losses = {
            "loss": labeled_loss + weight * consistency, "labeled_loss": labeled_loss,
            "consistency": consistency,
        }  # fmt: skip
        return self.penalized(losses, student)

    def after_update(self) -> None:
        decay = float(self.section.ema_decay)
        for mine, theirs in zip(self.teacher.weights, self.student.weights, strict=True):
            mine.assign(decay * mine + (1.0 - decay) * theirs)
