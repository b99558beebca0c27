"""The training config's fields and defaults: plain ml_collections, importable without JAX.

Every file in experiments/ starts from `default_config()` and changes what it needs; keys that are
not here are rejected with one line (`check_known_keys`). Keeping this module free of JAX lets
configs load quickly and lets the demo build its corpus before JAX is imported.
"""

import difflib
import importlib.util
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, with pix2pix's defaults. experiments/*.py start from this."""
  c = ml_collections.ConfigDict()
  c.family = 'pix2pix'  # the model family (training/trainer.py: FAMILIES)
  c.data_dir = ''  # dataset built by data_prep (records format); required
  c.image_size = 256  # must equal the dataset's mel image size
  c.batch_size = 1  # global, over all devices and hosts
  c.num_train_steps = 100_000
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  # A latest checkpoint that fails to restore stops the run (False), or is moved aside to
  # checkpoints/<step>.bad-<time> and the one before it is used (True).
  c.restore_fallback = False
  c.seed = 0
  c.log_every_steps = 100
  c.eval_every_steps = 5000  # validation L1 + TensorBoard images; 0: only at the end
  c.eval_max_examples = 0  # 0: the whole validation split
  c.num_images = 4  # examples shown in TensorBoard at each evaluation
  c.num_devices = 0  # 0: all devices (one process: the most that divide batch_size)
  c.dtype = 'float32'  # compute dtype: float32 | bfloat16 (params stay float32)
  c.fsdp = False  # shard params + optimizer state over 'data' (else replicate)
  c.fsdp_min_size = 2**14  # with fsdp: leaves with fewer elements stay replicated
  # Profile these steps with jax.profiler into <workdir>/profile: 'start:stop' (stop exclusive,
  # as a Python slice), e.g. '10:15'; '' for none.
  c.profile_steps = ''

  c.mesh = ml_collections.ConfigDict()
  # Slices joined by the data-centre network (TPU multi-slice): the 'data' axis spans them all,
  # slice by slice. 1: one slice (or one GPU cluster).
  c.mesh.dcn_data_parallelism = 1

  c.model = ml_collections.ConfigDict()
  c.model.ngf = 64
  c.model.ndf = 64
  c.model.n_layers_D = 3
  c.model.norm = 'batch'  # batch (global-batch synchronised) | instance | none
  c.model.gan_mode = 'vanilla'  # vanilla (BCE on logits) | lsgan
  c.model.lambda_L1 = 100.0
  # Weight of G's adversarial term (pix2pix: 1). 0: L1 alone, and D is not run at all.
  c.model.lambda_GAN = 1.0
  c.model.use_dropout = True
  c.model.era_conditioning = False
  # auto: gemm on CPU, phases on GPU, native on TPU (models/pix2pix.py); or gemm | phases |
  # depth_to_space | native. Resolved where the model is built, on the machine that runs it.
  c.model.conv_impl = 'auto'
  c.model.remat = False  # recompute U-Net block / PatchGAN layer activations in the backward pass
  # An exponential moving average of the generator's variables, kept as its own checkpoint item
  # ('generator_ema') and used by evaluation and generation unless told otherwise. The decay of
  # step t is min(ema_decay, (1 + t) / (10 + t)), so early averages do not drag the initial weights
  # along. 0 turns it off.
  c.model.ema_decay = 0.999

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  # pix2pix's n_epochs / n_epochs_decay in steps: constant lr until here, then linear to 0 at
  # num_train_steps. Follows num_train_steps (half of it) unless set.
  c.optimizer.decay_start_step = c.get_ref('num_train_steps') // 2
  # optax.MultiSteps: update every k steps with the mean gradient of k batches (effective batch
  # k * batch_size); steps, the lr schedule and checkpoints still count batches.
  c.optimizer.grad_accum_steps = 1

  # family='cyclegan' only (training/cyclegan_task.py): unpaired picture <-> mel. It also reads
  # model.ngf, ndf, n_layers_D, norm, gan_mode, conv_impl, remat, ema_decay and the optimizer.
  c.cyclegan = ml_collections.ConfigDict()
  c.cyclegan.generator = 'resnet'  # resnet (the reference's resnet_9blocks) | unet
  c.cyclegan.resnet_blocks = 9
  # The ResNet generator's geometry: stride-2 steps before the blocks (the reference's 2: blocks
  # at S/4 with ngf * 2**downsampling channels) and the stem's and head's kernel (the reference's
  # c7s1). More steps and a 3x3 edge make a generator far cheaper per picture
  # (experiments/cyclegan_demo.py, sized for the visualiser).
  c.cyclegan.downsampling = 2
  c.cyclegan.edge_kernel = 7
  c.cyclegan.lambda_cycle = 10.0  # L1 of picture -> mel -> picture and mel -> picture -> mel
  # Identity loss weight, as a fraction of lambda_cycle (the reference's 0.5): a mel, as a grey
  # picture, should come back from picture -> mel unchanged, and a picture's grey version, read as
  # a mel, should come back from mel -> picture as that picture. 0 turns it off.
  c.cyclegan.lambda_identity = 0.5
  c.cyclegan.pool_size = 50  # generated images kept per domain for the discriminator updates

  # family='vocoder' (training/vocoder_task.py): a Vocos-style neural vocoder (models/vocoder.py)
  # trained on the dataset's mels and stored audio. It shares optimizer.* (lr, b1, b2,
  # decay_start_step) with pix2pix and ignores model.*.
  c.vocoder = ml_collections.ConfigDict()
  c.vocoder.dim = 256  # ConvNeXt width
  c.vocoder.intermediate_dim = 768  # its pointwise MLP's hidden width
  c.vocoder.num_layers = 8
  c.vocoder.kernel_size = 7  # depthwise convolution over time, in frames (odd)
  # Predict the STFT log-magnitude as a correction of the mel's pseudo-inverse (models/vocoder.py).
  c.vocoder.magnitude_prior = True
  # Train on random crops of this many mel frames (and their audio); 0: whole clips.
  c.vocoder.segment_frames = 32
  # Loss: lambda_stft * multi-resolution STFT distance + lambda_mel * L1 of the mel images (the
  # dataset's scale, 2 per (max_db - min_db)) of the output and the target audio.
  c.vocoder.lambda_stft = 1.0
  c.vocoder.lambda_mel = 5.0
  # (n_fft, hop) pairs of the STFT distance; empty: audio/stft_distance.resolutions_for(the
  # dataset's sample rate).
  c.vocoder.stft_resolutions = ()
  c.vocoder.grad_clip_norm = 10.0  # 0: no clipping
  c.vocoder.ema_decay = 0.999  # moving average of the weights (inference's default); 0: none
  c.vocoder.num_audio = 2  # validation clips written to TensorBoard as audio at each evaluation

  c.input = ml_collections.ConfigDict()
  # Augmentation runs on the device inside the train step (data/augment.py).
  c.input.jitter = True  # resize to 286/256*S and random-crop S (painting and mel)
  c.input.flip = True  # random left-right flip of the painting only
  # grain worker processes; 0: decode in the main process; -1: none on CPU, 2 per accelerator.
  c.input.workers = -1
  c.input.shuffle_buffer = 0  # 0: exact global shuffle; N: index shuffle within windows of N
  return c


class ConfigError(ValueError):
  """A config that cannot run; the message is one line that says what is wrong."""


def cyclegan_reference_config() -> ml_collections.ConfigDict:
  """The CycleGAN recipe users know (pytorch-CycleGAN-and-pix2pix defaults), sound <-> picture:
  ResNet-9-block generators, 70x70 PatchGANs, instance norm, LSGAN, cycle L1 x10 both ways,
  identity 0.5 x 10, image pools of 50, batch 1 (experiments/cyclegan_base.py; here so that the
  packaged squiggles demo builds on it from any directory)."""
  config = default_config()
  config.family = 'cyclegan'
  config.batch_size = 1
  config.model.norm = 'instance'
  config.model.gan_mode = 'lsgan'
  config.model.use_dropout = False
  config.model.ema_decay = 0.0  # the reference keeps none; a config may turn it on
  config.cyclegan.generator = 'resnet'
  config.cyclegan.resnet_blocks = 9
  config.cyclegan.lambda_cycle = 10.0
  config.cyclegan.lambda_identity = 0.5
  config.cyclegan.pool_size = 50
  # Mels are never flipped (their columns are time); pictures are, as in the reference.
  config.input.jitter = True
  config.input.flip = True
  return config


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """`get_config()` of a Python config file, by path, from any working directory.

  Config files load their bases by path too (`load_config_file(sibling('base.py', __file__))`),
  so `experiments/` needs to be neither a package nor on sys.path.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'config file {str(path)!r} not found')
  spec = importlib.util.spec_from_file_location(f'_pix2pitch_config_{path.stem}', path)
  assert spec is not None and spec.loader is not None
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ConfigError(f'config file {str(path)!r} defines no get_config()')
  return module.get_config()


def sibling(name: str, file: str) -> pathlib.Path:
  """The config file `name` next to `file` (a config file's `__file__`)."""
  return pathlib.Path(file).resolve().with_name(name)


def flatten(config: ml_collections.ConfigDict, prefix: str = '') -> dict[str, Any]:
  """{'model.lambda_L1': 100.0, ...}: every leaf under its dotted key."""
  out: dict[str, Any] = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def unknown_key_message(key: str, known: Iterable[str]) -> str:
  """'Bad config: unknown key model.lambda_l1 (did you mean model.lambda_L1?)'."""
  known = list(known)
  lowered = {k.lower(): k for k in known}
  close = (
    [lowered[key.lower()]]
    if key.lower() in lowered
    else difflib.get_close_matches(key, known, n=1, cutoff=0.75)
  )
  hint = f' (did you mean {close[0]}?)' if close else ''
  return f'Bad config: unknown key {key}{hint}'


def check_known_keys(config: ml_collections.ConfigDict) -> None:
  """ConfigError naming the first key that `default_config()` does not have."""
  known = flatten(default_config())
  for key in flatten(config):
    if key not in known:
      raise ConfigError(unknown_key_message(key, known))


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
  """Set dotted keys (`{'model.lambda_L1': 50}`) in place; unknown keys get a ConfigError."""
  known = flatten(config)
  for key in overrides:
    if key not in known:
      raise ConfigError(unknown_key_message(key, known))
  config.update_from_flattened_dict(dict(overrides))
  return config
