"""Knowledge distillation: the tutorial's teacher (512-256-128) teaches the student (64-32) on digits."""

import pytest
from _reference import ReferenceModel

import pytest_tinyml as tinyml


class TestStudent(ReferenceModel):
    """The distilled student goes through every reference check, and must beat itself trained alone."""

    MODEL = "student"

    @pytest.fixture(scope="class")
    @classmethod
    def teacher(cls, data, budget, tinyml_cache):
        model = tinyml.zoo.build("teacher", input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
        return tinyml_cache.fit(model, data, epochs=budget.teacher_epochs)

    @pytest.fixture(scope="class")
    @classmethod
    def float_model(cls, teacher, data, budget, tinyml_cache):
        student = tinyml.zoo.build("student", input_shape=data.input_shape, num_classes=data.num_classes, seed=1)
        return tinyml.optimize.distill(teacher, student, data, epochs=budget.epochs, temperature=4.0, alpha=0.1,
                                       cache=tinyml_cache)

    def test_distilled_student_vs_alone(self, float_model, teacher, data, budget, tinyml_cache):
        alone = tinyml_cache.fit(
            tinyml.zoo.build("student", input_shape=data.input_shape, num_classes=data.num_classes, seed=1),
            data, epochs=budget.epochs,
        )
        scores = {
            name: tinyml.metrics.accuracy(data.y_test, tinyml.outputs(model, data.x_test))
            for name, model in (("teacher", teacher), ("distilled", float_model), ("alone", alone))
        }
        tinyml.record(model="student", recipe="distilled", accuracy=scores["distilled"],
                      drop=scores["alone"] - scores["distilled"])
        print(f"teacher {scores['teacher']:.4f}  distilled student {scores['distilled']:.4f}  "
              f"student alone {scores['alone']:.4f}")
        # Distillation must not cost accuracy against the same student trained alone on the same data.
        assert scores["distilled"] >= scores["alone"] - 0.01
