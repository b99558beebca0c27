"""Demo: the built-in demo corpora (128x128 mels of 4 s clips) on a 2-core CPU.

A half-width U-Net (ngf = ndf = 32, 7 levels at 128^2) at batch 4. `synesthesia` (the default)
trains it on L1 alone for 3 000 steps (~10 steps/s on 2 idle cores, ~5 minutes); `eras` trains
pix2pix (GAN + 100 L1) for 1 000 steps (~6 steps/s). Measured figures are in WORKSPACE_NOTES.md.
`squiggles` is the unpaired one: a CycleGAN on 1 s single notes <-> small drawings (64x64), sized
so that its sound -> picture generator draws 30+ frames/s at 128x128 in the visualiser
(`_squiggles_recipe`; also `experiments/cyclegan_demo.py`).

No jitter and no flip: the demo paintings are synthetic and spatially aligned with their music
(on `synesthesia` a stroke's column is its onset time), so pix2pix's painting-only flip would
pair mirrored paintings with unmirrored music, and the resize-and-crop jitter would move notes
off their pitch rows.

    pix2pitch-train --config=experiments/demo.py --workdir=runs/demo/train \
        --config.data_dir=runs/demo/data             # synesthesia; experiments/demo.py:eras
"""

from pix2pitch_jax.core import configs

DEMOS = ('synesthesia', 'eras', 'squiggles')


def get_config(demo: str | None = None):
  """The recipe for `demo` ('synesthesia', the default, 'eras' or 'squiggles'; on the command
  line `--config=experiments/demo.py:eras`, and experiments/cyclegan_demo.py for squiggles)."""
  demo = demo or 'synesthesia'
  if demo not in DEMOS:
    raise configs.ConfigError(f'Bad config: unknown demo {demo!r}; choose one of {DEMOS}')
  if demo == 'squiggles':
    return _squiggles_recipe()
  config = configs.default_config()
  config.image_size = 128
  config.batch_size = 4
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  config.log_every_steps = 50
  config.eval_every_steps = 250
  config.eval_max_examples = 64
  config.model.ngf = 32
  config.model.ndf = 32
  config.input.jitter = False
  config.input.flip = False
  config.input.workers = 0
  if demo == 'synesthesia':
    _known_answer_recipe(config)
  else:
    config.num_train_steps = 1000
  return config


def _known_answer_recipe(config) -> None:
  """synesthesia: each painting *is* its score, so there is one right mel per painting and L1 alone
  finds it; the adversarial term only adds texture, which the note transcribers hear as extra
  notes. Measured on the 99 test paintings (WORKSPACE_NOTES.md, "Fidelity"): onset F1 0.45 with
  pix2pix's GAN + 100 L1 at 1 000 steps, 0.85 with 10 000 L1, 0.95 with L1 alone at 3 000 steps;
  without D a step costs ~40 % less, so the longer run fits the same minutes."""
  config.model.lambda_GAN = 0.0
  config.num_train_steps = 3000
  # The lr decays linearly to 0 over the second half, so late weights are already an average; a
  # 0.999 moving average (~1 000 steps) would still carry the early ones (onset F1 0.94 vs 0.95).
  config.model.ema_decay = 0.99
  config.checkpoint_every_steps = 500
  config.eval_every_steps = 1000


def _squiggles_recipe():
  """CycleGAN on the `squiggles` corpus (1 s single-note clips <-> small drawings) on a 2-core CPU.

  The reference's 128-pixel recipe (ResNet-6-block generators) sized for the visualiser's real
  time (>= 30 frames/s at 128x128 on 2 CPU cores, bench/visualise.py): generators of ngf = 8 that
  halve three times (the blocks at S/8 with 64 channels) with 3x3 stem and head convolutions,
  0.36 GFLOP per 128x128 picture against the reference geometry's 1.32 at ngf 16; discriminators
  of ndf = 16. Batch 4, 64x64 (the corpus default; for a 128x128 corpus pass
  --config.image_size=128). No jitter: the corpus' rule ties a drawing's height to the pitch,
  which a random crop would blur; pictures are still flipped left-right (the rule does not care),
  mels never. Identity loss as in the reference (0.5 x 10).
  """
  config = configs.cyclegan_reference_config()
  config.image_size = 64
  config.batch_size = 4
  # 1 000 steps to fit `make demo` in 15 minutes on 2 cores (2 000 took 19 min 17 s at load 2-8,
  # 18 of them training); pitch -> height is learned by step 250.
  config.num_train_steps = 1000
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.eval_max_examples = 64
  config.model.ngf = 8
  config.model.ndf = 16
  config.model.ema_decay = 0.99  # a short run: the average of its last ~100 steps
  config.cyclegan.resnet_blocks = 6
  config.cyclegan.downsampling = 3
  config.cyclegan.edge_kernel = 3
  config.input.jitter = False
  config.input.flip = True
  config.input.workers = 0
  return config
