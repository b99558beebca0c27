"""The training config's fields and defaults: plain ml_collections, importable without JAX.

Every file in experiments/ starts from `default_config()` and changes what it needs; the trainer
rejects keys that are not here (`trainer.validate_config`). Keeping this module free of JAX lets
configs load quickly and lets the demo build its corpus before JAX is imported.
"""

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, with pix2pix's defaults. experiments/*.py start from this."""
  c = ml_collections.ConfigDict()
  c.data_dir = ''              # dataset built by data_prep (records format); required
  c.image_size = 256           # must equal the dataset's mel image size
  c.batch_size = 1             # global, over all devices and hosts
  c.num_train_steps = 100_000
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.seed = 0
  c.log_every_steps = 100
  c.eval_every_steps = 5000    # validation L1 + TensorBoard images; 0: only at the end
  c.eval_max_examples = 0      # 0: the whole validation split
  c.num_images = 4             # examples shown in TensorBoard at each evaluation
  c.num_devices = 0            # 0: all devices (one process: the most that divide batch_size)
  c.dtype = 'float32'          # compute dtype: float32 | bfloat16 (params stay float32)
  c.fsdp = False               # shard params + optimizer state over 'data' (else replicate)

  c.model = ml_collections.ConfigDict()
  c.model.ngf = 64
  c.model.ndf = 64
  c.model.n_layers_D = 3
  c.model.norm = 'batch'       # batch (global-batch synchronised) | instance | none
  c.model.gan_mode = 'vanilla'  # vanilla (BCE on logits) | lsgan
  c.model.lambda_L1 = 100.0
  c.model.use_dropout = True
  c.model.era_conditioning = False
  c.model.conv_impl = 'gemm'  # see models.py: gemm | phases | depth_to_space | native

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  # pix2pix's n_epochs / n_epochs_decay in steps: constant lr until here, then linear to 0 at
  # num_train_steps. Follows num_train_steps (half of it) unless set.
  c.optimizer.decay_start_step = c.get_ref('num_train_steps') // 2

  c.input = ml_collections.ConfigDict()
  c.input.jitter = True        # resize to 286/256*S and random-crop S (painting and mel)
  c.input.flip = True          # random left-right flip of the painting only
  c.input.workers = 0          # grain worker processes (0: decode in the main process)
  c.input.shuffle_buffer = 0   # 0: exact global shuffle; N: index shuffle within windows of N
  return c
