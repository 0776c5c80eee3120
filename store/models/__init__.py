"""Every table, one per module; importing this package registers them all on Base.metadata."""

from store.base import Base
from store.models.api_key import ApiKey
from store.models.completion import Completion
from store.models.completion_choice import CompletionChoice
from store.models.policy_version import PolicyVersion
from store.models.learner_lease import LearnerLease
from store.models.training_run import TrainingRun, TrainingRunStatus
from store.models.feedback import Feedback, Rating
from store.models.feedback_event import FeedbackEvent
from store.models.comparison import Comparison
from store.models.comparison_vote import ComparisonVote, Winner
from store.models.ranking import Ranking

__all__ = ["ApiKey", "Base", "Completion", "CompletionChoice", "PolicyVersion"]
__all__ += ["LearnerLease", "TrainingRun", "TrainingRunStatus"]
__all__ += ["Comparison", "ComparisonVote", "Feedback", "FeedbackEvent", "Ranking", "Rating", "Winner"]
from store.models.policy_event import PolicyEvent

__all__ += ["PolicyEvent"]
