"""pix2pix augmentation on the device, inside the jitted training step.

The host ships what the records store (uint8 paintings, float16 mels) plus each row's global
example index (`input_pipeline.train_dataset`); here they become float32 model inputs and are
augmented as pytorch pix2pix's `resize_and_crop` + flip do: painting and mel are resized to
~1.117*S (286/256, bicubic) and cropped at the same random offset; only the painting is flipped
left-right, since the mel's columns are time and must not run backwards.

Row i's randomness is `fold_in(key, index[i])`: a function of the example's position in the
global example stream only. A global batch is therefore augmented identically whether one host or
sixty-four read it and whatever the device count, and a resumed run repeats an uninterrupted one.

The resize and crop are one `jax.image.scale_and_translate` per row (the crop is a translation),
two small matrix products per row: ~0.3 GFLOP per 256x256 example, well under 1 % of a training
step's ~87 GFLOP.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

LOAD_SCALE = 286 / 256  # pix2pix --load_size 286 for --crop_size 256


def load_size(size: int) -> int:
  """The side pix2pix resizes to before cropping `size` (286 for 256)."""
  return int(round(size * LOAD_SCALE))


def to_float(painting: jax.Array, mel: jax.Array) -> tuple[jax.Array, jax.Array]:
  """uint8 paintings (B,S,S,3) -> float32 in [-1, 1]; 16-bit mels (B,S,S) -> float32 (B,S,S,1)."""
  return painting.astype(jnp.float32) / 127.5 - 1.0, mel.astype(jnp.float32)[..., None]


def augment(
  key: jax.Array,
  index: jax.Array,
  painting: jax.Array,
  mel: jax.Array,
  *,
  jitter: bool,
  flip: bool,
) -> tuple[jax.Array, jax.Array]:
  """Jitter (shared crop of the resized painting and mel) and painting-only flip, per row.

  `painting` (B,S,S,3) and `mel` (B,S,S,1) are float32 in [-1, 1]; `index` (B,) holds the rows'
  global example indices (any integer dtype; taken modulo 2**32).
  """
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index.astype(jnp.uint32))
  one = functools.partial(_augment_row, jitter=jitter, flip=flip)
  return jax.vmap(one)(keys, painting, mel)


def _augment_row(key, painting, mel, *, jitter: bool, flip: bool):
  crop_key, flip_key = jax.random.split(key)
  if jitter:
    size = painting.shape[0]
    offset = jax.random.randint(crop_key, (2,), 0, load_size(size) - size + 1)
    both = resize_and_crop(jnp.concatenate([painting, mel], axis=-1), offset)
    painting, mel = both[..., :3], both[..., 3:]
  if flip:
    painting = jnp.where(jax.random.bernoulli(flip_key), painting[:, ::-1], painting)
  return painting, mel


def resize_and_crop(image: jax.Array, offset: jax.Array) -> jax.Array:
  """The (S,S) window at `offset` = (top, left) of `image` (S,S,C) resized bicubically to
  `load_size(S)`, clipped to [-1, 1]; computed directly, with no load_size^2 intermediate.

  Bicubic is the Keys kernel with a = -0.5 (PIL's BICUBIC, what pix2pix's transforms use);
  upsampling needs no antialiasing. HIGHEST precision: TPUs would otherwise multiply in bf16.
  """
  size = image.shape[0]
  scale = load_size(size) / size
  out = jax.image.scale_and_translate(
    image,
    image.shape,
    (0, 1),
    jnp.array([scale, scale], jnp.float32),
    -offset.astype(jnp.float32),
    method='cubic',
    antialias=False,
    precision=jax.lax.Precision.HIGHEST,
  )
  return jnp.clip(out, -1.0, 1.0)


def augment_images(
  key: jax.Array, index: jax.Array, images: jax.Array, *, jitter: bool, flip: bool
) -> jax.Array:
  """One domain's images (B,S,S,C) in [-1, 1] augmented alone, per row as `augment` does (jitter,
  then flip when asked): CycleGAN draws its pictures and its mels independently. `index` (B,)
  keys each row; flip only images whose columns are not time."""
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index.astype(jnp.uint32))
  return jax.vmap(functools.partial(_augment_image, jitter=jitter, flip=flip))(keys, images)


def _augment_image(key, image, *, jitter: bool, flip: bool):
  crop_key, flip_key = jax.random.split(key)
  if jitter:
    size = image.shape[0]
    offset = jax.random.randint(crop_key, (2,), 0, load_size(size) - size + 1)
    image = resize_and_crop(image, offset)
  if flip:
    image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
  return image
