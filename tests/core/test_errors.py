"""Every exception edge raises on purpose is an EdgeError (edge.core.errors), whatever else it is."""

import pytest

from edge.core.errors import EdgeError
from edge.learning.feedback import FeedbackRejected
from edge.learning.model import CheckpointError
from edge.learning.prior import PriorError
from edge.offline.traces import TraceFormatError
from edge.pipeline.rewrite.errors import RewriteError
from edge.transport.encoding import DecodeFailed


@pytest.mark.parametrize("error", [CheckpointError, PriorError, TraceFormatError, DecodeFailed, FeedbackRejected, RewriteError])
def test_deliberate_errors_are_edge_errors(error):
    assert issubclass(error, EdgeError)


@pytest.mark.parametrize("error", [CheckpointError, PriorError, TraceFormatError, DecodeFailed])
def test_they_keep_the_base_callers_catch(error):
    assert issubclass(error, ValueError)
