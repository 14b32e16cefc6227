"""The tune-time class boundary on hand-built vectors whose geometry is known."""
import numpy as np

from stages.tuning.neighbor_boundary import class_boundary_view


def unit(*rows):
    a = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


CLASSES = unit([1, 0, 0], [0, 1, 0])  # class 0 along x, class 1 along y


def test_drops_exactly_the_neighbors_closer_to_another_training_class():
    # Class 0: (1, .2) is its own; (.2, 1) is closer to class 1; (1, .9, .3) is closer to its own (1 > .9).
    # Class 1: (.5, .5, .7) is a tie (equal cosines): kept, only strictly closer elsewhere is dropped.
    view = class_boundary_view(CLASSES, [unit([1, .2, 0], [.2, 1, 0], [1, .9, .3]), unit([.5, .5, .7])],
                               enabled=True, same_text_cos=0.97)
    assert view.status == "on"
    assert view.kept == [[0, 2], [0]] and view.dropped == [[1], []]


def test_off_keeps_everything_and_says_why():
    neighbors = [unit([.2, 1, 0]), unit([1, 0, 0], [0, 1, 0])]
    off = class_boundary_view(CLASSES, neighbors, enabled=False, same_text_cos=0.97)
    assert off.kept == [[0], [0, 1]] and off.dropped == [[], []] and off.status.startswith("off (sept.boundary_filter")
    one = class_boundary_view(CLASSES[:1], neighbors[:1], enabled=True, same_text_cos=0.97)
    assert one.kept == [[0]] and one.status.startswith("off: one training class")
    # A collapsed encoder (class names within cosine 0.9999): the decision would be noise.
    collapsed = unit([1, 0.01, 0], [1, 0, 0.01])
    noise = class_boundary_view(collapsed, [unit([1, 0, 0.02]), unit([1, 0.02, 0])], enabled=True,
                                same_text_cos=0.97)
    assert noise.kept == [[0], [0]] and "does not separate the training class names" in noise.status


def test_a_class_without_stored_neighbors_is_fine():
    view = class_boundary_view(CLASSES, [np.zeros((0, 3)), unit([0, 1, 0])], enabled=True, same_text_cos=0.97)
    assert view.kept == [[], [0]] and view.dropped == [[], []]
