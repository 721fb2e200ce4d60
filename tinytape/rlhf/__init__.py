"""RLHF in three steps, as InstructGPT does it, and DPO, on a task small enough to enumerate.

    python -m tinytape rlhf            # the whole experiment (docs/rlhf.md)

Modules:
    task        prompts, the rule-based true reward, demonstrations, simulated labelers
    policy      the GPT as a policy over responses: log-probs, sampling, exact tables, value head
    sft         pretraining and step 1 (supervised fine-tuning, loss on response tokens only)
    reward      step 2: comparisons, the reward model and InstructGPT's ranking loss
    ppo         step 3: PPO with a per-token KL penalty, GAE, clipping, adaptive KL control
    dpo         DPO on the same comparisons
    exact       exact KL, win rates, the KL-regularized optimum (also at a given KL),
                best-of-n, KL estimators
    plots       the figures of the experiment (tinytape.experiments.rlhf; matplotlib optional)
"""

from .exact import kl_estimators, optimal_logp, summarize
from .ppo import AdaptiveKLController, PPOConfig, PPOTrainer, gae
from .reward import Comparisons, RewardModel, ranking_loss
from .task import Labeler, Task, TaskConfig

__all__ = ["Task", "TaskConfig", "Labeler", "Comparisons", "RewardModel", "ranking_loss",
           "PPOConfig", "PPOTrainer", "AdaptiveKLController", "gae", "kl_estimators",
           "optimal_logp", "summarize"]
