"""`sefa-edit ui`: the SeFa interface for one's own photos, as a local Gradio app.

Two tabs. "Edit a photo": upload a photo (or pick one already in OUT), click a face, it is aligned and
inverted (progress shown; cached in OUT like `run`), then one slider per direction moves it, each
with its own layer range; the face and the pasted-back photo update when a slider is released, and
the photo and a recipe can be saved for `edit --recipe` / `run --recipe`. "Explore": SeFa's own mode,
random samples by seed with the same sliders, and a form that names a direction in labels.json.
All the work is in `pipeline.editor_session`; this file is the page and its wiring only. Errors reach
the page as the CLI's one-line messages (never a stack trace).
"""

# No `from __future__ import annotations` here: Gradio reads handlers' annotations at run time
# (`evt: gr.SelectData` is how a gallery click passes which thumbnail), and strings would hide them.
import functools
import os
import re
import socket
import sys
import traceback
from pathlib import Path
from typing import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local tool phones nobody

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
import numpy as np  # noqa: E402

from common.demo_models import DEMO_WARNING  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.progress import listen  # noqa: E402
from generators.interface import InputTransform  # noqa: E402
from pipeline.editor_session import (  # noqa: E402
    CUSTOM, DETECTORS, LAYER_PRESETS, MAX_UPLOAD_BYTES, EditorSession, Move, upload_too_large,
)

MAX_SLIDERS = 10
PRESETS = [*LAYER_PRESETS, CUSTOM]
CSS = ".banner { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5em 1em; font-weight: 600; }"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def checked_choices(component):
    """`component` (a Dropdown or Radio) whose refusal of a value outside its choices (a crafted
    request: `/etc/passwd`, `../../x`, a FIFO path) is one line on the server's stderr and in the page,
    not Gradio's full traceback. The page itself only ever sends listed choices. (The instance's
    `preprocess` is wrapped rather than the class subclassed: Gradio writes a `.pyi` stub beside any
    module that defines a component class.)"""
    refuse_or_pass = component.preprocess

    def preprocess(payload):
        try:
            return refuse_or_pass(payload)
        except gr.Error:
            shown = repr(payload)[:120]
            print(f"ui: refused {shown} for '{component.label}': not one of its choices", file=sys.stderr, flush=True)
            raise gr.Error(f"{shown} is not one of the choices of '{component.label}'", print_exception=False) from None

    component.preprocess = preprocess
    return component


class UploadLimitInOurWords:
    """ASGI middleware: Gradio answers an upload over `max_file_size` with 413 and its own text; this
    puts our one line in the body instead (and on the server's stderr). Other responses pass as they are."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_ours(message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                text = upload_too_large("the upload", None)
                print(f"ui: refused an upload: {text}", file=sys.stderr, flush=True)
                body = text.encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
                headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
                await send({**message, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
            elif not replaced:
                await send(message)

        await self.app(scope, receive, send_ours)


def user_errors(handler: Callable) -> Callable:
    """Show UserError as its one line in the page; anything else as one line too, with the trace on stderr."""

    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # a bug: one line in the page, the details where developers look
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"internal error ({type(exc).__name__}: {exc}); details are in the terminal",
                           print_exception=False) from None

    return wrapped


class SliderPanel:
    """K sliders, each with its layer choice; `moves(values)` reads them back in order."""

    def __init__(self, session: EditorSession, strength: float, prefix: str) -> None:
        self.session = session
        self.count = min(session.num_directions, MAX_SLIDERS)
        names = session.direction_names()
        self.sliders, self.presets, self.customs, self.keeps = [], [], [], []
        for k in range(self.count):
            with gr.Row(equal_height=True):
                self.sliders.append(gr.Slider(-strength, strength, value=0, step=0.1, label=f"direction {names[k]}",
                                              elem_id=f"{prefix}-slider-{k}", scale=3))
                self.presets.append(checked_choices(gr.Dropdown(
                    PRESETS, value=PRESETS[0], label="layers", elem_id=f"{prefix}-layers-{k}", scale=1, min_width=120)))
                self.customs.append(gr.Textbox(value="", label="custom layers", placeholder="e.g. 0-3 or 4,5",
                                               elem_id=f"{prefix}-custom-{k}", scale=1, min_width=100))
                # InterFaceGAN's conditional edit: this slider moves only along what is orthogonal to the kept ones
                self.keeps.append(checked_choices(gr.Dropdown(
                    [(names[j], j) for j in range(session.num_directions) if j != k], value=[], multiselect=True,
                    label="keep unchanged", elem_id=f"{prefix}-keep-{k}", scale=1, min_width=120)))

    @property
    def inputs(self) -> list:
        return [*self.sliders, *self.presets, *self.customs, *self.keeps]

    def moves(self, values: tuple) -> list[Move]:
        n = self.count
        strengths, presets, customs, keeps = values[:n], values[n : 2 * n], values[2 * n : 3 * n], values[3 * n :]
        return [Move(k, float(strengths[k] or 0), self.session.layers_for(presets[k], customs[k] or ""),
                     tuple(int(j) for j in (keeps[k] or [])))
                for k in range(self.count)]

    def wire(self, handler: Callable, inputs_before: list, outputs: list) -> None:
        """Re-render on slider release, on a new layer choice, on Enter in a custom layer box."""
        for slider in self.sliders:
            slider.release(handler, [*inputs_before, *self.inputs], outputs, show_progress="hidden")
        for control in self.presets:
            control.change(handler, [*inputs_before, *self.inputs], outputs, show_progress="hidden")
        for box in self.customs:
            box.submit(handler, [*inputs_before, *self.inputs], outputs, show_progress="hidden")
        for control in self.keeps:
            control.change(handler, [*inputs_before, *self.inputs], outputs, show_progress="hidden")

    def relabel(self) -> list:
        names = self.session.direction_names()
        return [gr.update(label=f"direction {names[k]}") for k in range(self.count)]


def for_display(crop: np.ndarray, side: int = 256) -> np.ndarray:
    """Small generators' crops blown up by a whole factor with nearest pixels: seen, and still exact."""
    factor = max(1, side // crop.shape[0])
    return np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1) if factor > 1 else crop


def direction_sources(session: EditorSession) -> str:
    """Where the sliders' directions come from, in a few words: 'SeFa', 'InterFaceGAN boundary ...'."""
    sources = list(dict.fromkeys(re.sub(r"component \d+ of", "components of", session.directions.source_of(k))
                                 for k in range(session.num_directions)))
    return "; ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")


def header_markdown(session: EditorSession) -> str:
    lines = [f"**generator** {session.generator_label} (sha256 {session.checkpoint.sha256[:12]}…, "
             f"{session.checkpoint.format}, {session.checkpoint.resolution} px) · **encoder** "
             f"{session.encoder_path or 'none'} · **directions** {session.directions_path} "
             f"({session.num_directions}, layers {','.join(map(str, session.directions.layers))}, "
             f"from {direction_sources(session)})"]
    if session.demo:
        lines.insert(0, f'<p class="banner">{DEMO_WARNING}</p>')
    return "\n\n".join(lines)


def build_app(session: EditorSession, steps: int = 100, strength: float = 3.0) -> gr.Blocks:
    with gr.Blocks(title="sefa-edit") as app:
        gr.Markdown("## sefa-edit: edit your photo with SeFa directions")
        gr.Markdown(header_markdown(session))
        face_key = gr.State("")
        face_names = gr.State([])
        current_photo = gr.State(["", False, ""])  # the photo chosen: its path, whether it is an upload, its own name
        overview_width = gr.State(0)
        saved_files = gr.State([])  # every file saved in this page, so each save adds a link instead of replacing one
        if not session.edits_photos:
            gr.Markdown(f"This {session.checkpoint.architecture} generator has no W+ codes to invert a photo into: "
                        f"explore its samples below.", elem_id="explore-only")
        with gr.Tab("Edit a photo", visible=session.edits_photos):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label=f"Photo (at most {MAX_UPLOAD_BYTES // 2**20} MB)", file_types=["image"],
                                     type="filepath", elem_id="upload")
                    existing = checked_choices(gr.Dropdown([str(p) for p in session.photos_in_out()], value=None,
                                                           label="or a photo already in OUT", elem_id="existing"))
                    detector = checked_choices(gr.Radio(list(DETECTORS.values()), value=DETECTORS["hog"],
                                                        label="face detector", elem_id="detector"))
                    overview = gr.Image(label="Faces: click a numbered box to edit that face", format="jpeg",
                                        interactive=False, elem_id="faces-photo", height=260, visible=False)
                    gallery = gr.Gallery(label="or click its number", columns=6, height=140, allow_preview=False,
                                         elem_id="faces", visible=False)
                    with gr.Row():
                        steps_box = gr.Number(value=steps, precision=0, minimum=0, maximum=5000, label="inversion steps",
                                              elem_id="steps")
                        tune_box = gr.Number(value=0, precision=0, minimum=0, maximum=2000, label="pivotal tuning steps",
                                             info="0: off; PTI uses 350 (slower, more faithful)", elem_id="tune")
                    # on a row of its own: beside the two numbers the left column is too narrow for its label
                    use_encoder = gr.Checkbox(value=session.encoder_path is not None, label="start from the encoder",
                                              interactive=session.encoder_path is not None)
                    invert_button = gr.Button("Invert again", elem_id="invert")
                    status = gr.Markdown("Upload a photo to begin.", elem_id="status")
                with gr.Column(scale=2):
                    with gr.Row():
                        face_image = gr.Image(label="edited face", format="png", interactive=False, elem_id="face",
                                              height=320)
                        photo_image = gr.Image(label="photo", format="jpeg", interactive=False, elem_id="photo", height=320)
                    paste = gr.Checkbox(value=True, label="paste back into the photo", elem_id="paste")
            with gr.Row():
                strength_range = gr.Number(value=strength, minimum=0.1, maximum=50, label="strength range (±)")
                reset = gr.Button("Reset sliders", elem_id="reset")
            panel = SliderPanel(session, strength, "edit")
            with gr.Row():
                fmt = checked_choices(gr.Radio(["like the photo", "png", "jpeg"], value="like the photo", label="photo format"))
                save_photo = gr.Button("Save edited photo", elem_id="save-photo")
                recipe_name = gr.Textbox(value="my-edit", label="recipe name", elem_id="recipe-name")
                save_recipe = gr.Button("Save recipe", elem_id="save-recipe")
            downloads = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="downloads")

        with gr.Tab("Explore"):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                truncation = gr.Slider(0, 1, value=0.7, step=0.05, label="truncation psi")
                # A conditional generator samples one of its classes; unconditional ones have no class field.
                class_box = gr.Number(value=0, precision=0, minimum=0, maximum=max(session.num_classes - 1, 0),
                                      label=f"class (0..{session.num_classes - 1})", elem_id="class",
                                      visible=session.num_classes > 0)
                sample_button = gr.Button("Sample", elem_id="sample")
            # StyleGAN3 renders a continuous signal: the whole image can turn and shift (gen_images.py --rotate/--translate).
            with gr.Row(visible=session.can_transform):
                rotate = gr.Slider(-180, 180, value=0, step=1, label="rotate (degrees)", elem_id="rotate")
                shift_x = gr.Slider(-0.5, 0.5, value=0, step=0.01, label="shift x (half-image units)", elem_id="shift-x")
                shift_y = gr.Slider(-0.5, 0.5, value=0, step=0.01, label="shift y", elem_id="shift-y")
            sample_image = gr.Image(label="sample", format="png", interactive=False, elem_id="sample-image", height=320)
            explore = SliderPanel(session, strength, "explore")
            with gr.Row():
                label_direction = checked_choices(gr.Dropdown(list(range(session.num_directions)), value=0,
                                                              label="direction", elem_id="label-direction"))
                label_name = gr.Textbox(label="name it", placeholder="e.g. age", elem_id="label-name")
                label_sign = checked_choices(gr.Radio(["+", "-"], value="+", label="positive strength means"))
                label_button = gr.Button("Save label", elem_id="save-label")
            label_status = gr.Markdown("", elem_id="label-status")

        # --- edit a photo ---------------------------------------------------------------------------------

        detector_names = {shown: name for name, shown in DETECTORS.items()}
        face_outputs = [overview, gallery, face_names, status, current_photo, overview_width]

        def show_faces(photo_path: str | None, uploaded: bool, detector_shown: str, shown_as: str | None = None):
            if not photo_path:
                return gr.update(), gr.update(), [], "Upload a photo to begin.", ["", False, ""], 0
            photo = session.import_photo(Path(photo_path)) if uploaded else Path(photo_path)
            shown_as = shown_as or Path(photo_path).name
            try:
                faces = session.find_faces(photo, shown_as=shown_as, detector=detector_names.get(detector_shown, "hog"))
            except UserError:
                if uploaded:
                    photo.unlink(missing_ok=True)  # keep OUT/uploads to photos that have faces
                raise
            picture = session.faces_overview(faces)
            items = [(str(face.crop), f"face {face.number}") for face in faces]
            hint = "one face" if len(faces) == 1 else f"{len(faces)} faces: click the one to edit (a box on the photo, or its number)"
            many = len(faces) > 1
            return (gr.update(value=picture, visible=True), gr.update(value=items, visible=many), [face.name for face in faces],
                    f"{shown_as}: {hint}.", [str(photo), False, shown_as], picture.shape[1])

        def detect_again(photo: list, detector_shown: str):
            """Another detector for the photo already chosen (imported into OUT/uploads once it had faces)."""
            if not photo or not photo[0]:
                return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
            return show_faces(photo[0], bool(photo[1]), detector_shown, photo[2] or None)

        def remember(photo_path: str | None, uploaded: bool):
            return [photo_path or "", uploaded, Path(photo_path).name if photo_path else ""]

        def invert(names: list[str], index: int, steps_value, encoder_on: bool, tune_value, paste_on: bool, *controls,
                   progress=gr.Progress()):
            if not names:
                raise UserError("no photo yet: upload one first")
            face = session.known_faces[names[index]]
            with listen(lambda what, done, total: progress((done, total), desc=what)):
                opened = session.open_face(face, int(steps_value or 0), bool(encoder_on), max(0, int(tune_value or 0)))
            crop, screen = session.edit_face(opened, panel.moves(controls), paste_on)
            metrics = opened.inversion
            quality = f"PSNR {metrics.get('psnr', '?')} dB" + (f", LPIPS {metrics['lpips']}" if metrics.get("lpips") else "")
            if opened.generator is not None:
                quality += f"; tuned {metrics.get('tune_steps_run', '?')} steps: PSNR {metrics.get('tuned_psnr', '?')} dB"
                metrics = {**metrics, "identity": metrics.get("tuned_identity")}
            identity = metrics.get("identity")
            if identity is not None:  # dlib's distance to the photo's person, or why there is none
                quality += f", identity {identity:.2f}" if isinstance(identity, (int, float)) else f", identity: {identity}"
            return (face.name, for_display(crop), screen if screen is not None else opened.screen_photo,
                    f"**{face.label}** inverted ({metrics.get('steps', steps_value)} steps, {quality}). Move a slider.")

        def choose_on_photo(evt: gr.SelectData, names: list[str], width: int, steps_value, encoder_on, tune_value, paste_on, *controls,
                            progress=gr.Progress()):
            """A click on the overview: Gradio passes the pixel as `evt.index` ([x, y] in the shown picture)."""
            faces = [session.known_faces[name] for name in names]
            x, y = evt.index
            face = session.face_at(faces, float(x), float(y), int(width)) if faces else None
            if face is None:
                return gr.update(), gr.update(), gr.update(), "That is not on a face: click inside a numbered box."
            return invert(names, names.index(face.name), steps_value, encoder_on, tune_value, paste_on, *controls, progress=progress)

        def choose(evt: gr.SelectData, names: list[str], steps_value, encoder_on, tune_value, paste_on, *controls, progress=gr.Progress()):
            """A thumbnail was clicked: Gradio passes which one as `evt` (it must come first, before *controls)."""
            return invert(names, evt.index, steps_value, encoder_on, tune_value, paste_on, *controls, progress=progress)

        def first_if_single(names: list[str], steps_value, encoder_on, tune_value, paste_on, *controls, progress=gr.Progress()):
            if len(names) != 1:
                return gr.update(), gr.update(), gr.update(), gr.update()
            return invert(names, 0, steps_value, encoder_on, tune_value, paste_on, *controls, progress=progress)

        def again(key: str, names: list[str], steps_value, encoder_on, tune_value, paste_on, *controls, progress=gr.Progress()):
            index = names.index(key) if key in names else 0
            return invert(names, index, steps_value, encoder_on, tune_value, paste_on, *controls, progress=progress)

        def update(key: str, paste_on: bool, *controls):
            opened = session.open_faces.get(key)
            if opened is None:
                return gr.update(), gr.update()
            crop, screen = session.edit_face(opened, panel.moves(controls), paste_on)
            return for_display(crop), screen if screen is not None else gr.update()

        invert_inputs = [steps_box, use_encoder, tune_box, paste, *panel.inputs]
        invert_outputs = [face_key, face_image, photo_image, status]
        # The photo is remembered first, so that a detector change can look again even after "no face found".
        upload.upload(user_errors(lambda path: remember(path, True)), [upload], [current_photo]).then(
            user_errors(lambda path, shown: show_faces(path, True, shown)), [upload, detector], face_outputs).then(
            user_errors(first_if_single), [face_names, *invert_inputs], invert_outputs)
        existing.input(user_errors(lambda path: remember(path, False)), [existing], [current_photo], api_name="pick_existing").then(
            user_errors(lambda path, shown: show_faces(path, False, shown)), [existing, detector], face_outputs).then(
            user_errors(first_if_single), [face_names, *invert_inputs], invert_outputs)
        detector.change(user_errors(detect_again), [current_photo, detector], face_outputs).then(
            user_errors(first_if_single), [face_names, *invert_inputs], invert_outputs)
        gallery.select(user_errors(choose), [face_names, *invert_inputs], invert_outputs)
        overview.select(user_errors(choose_on_photo), [face_names, overview_width, *invert_inputs], invert_outputs)
        invert_button.click(user_errors(again), [face_key, face_names, *invert_inputs], invert_outputs)
        panel.wire(user_errors(update), [face_key, paste], [face_image, photo_image])
        paste.change(user_errors(update), [face_key, paste, *panel.inputs], [face_image, photo_image], show_progress="hidden")

        def zero_all(key: str, paste_on: bool, *controls):
            zeros = [0.0] * panel.count
            crop, screen = update(key, paste_on, *zeros, *controls[panel.count :])
            return [*[gr.update(value=0) for _ in range(panel.count)], crop, screen]

        reset.click(user_errors(zero_all), [face_key, paste, *panel.inputs], [*panel.sliders, face_image, photo_image])

        def set_range(limit):
            limit = abs(float(limit or 3.0)) or 3.0
            return [gr.update(minimum=-limit, maximum=limit) for _ in range(panel.count + explore.count)]

        strength_range.change(set_range, [strength_range], [*panel.sliders, *explore.sliders])

        def with_saved(saved: list[str], path: Path):
            """The downloads box lists every file saved so far, the newest first (a save adds, never replaces)."""
            files = [str(path), *[old for old in saved if old != str(path) and Path(old).is_file()]]
            return files, files

        def photo_file(key: str, fmt_value: str, saved: list[str], *controls):
            opened = session.open_faces.get(key)
            if opened is None:
                raise UserError("no face open yet: upload a photo and pick a face")
            return with_saved(saved, session.full_photo(opened, panel.moves(controls), {"png": "png", "jpeg": "jpeg"}.get(fmt_value, "source")))

        def recipe_file(name: str, saved: list[str], *controls):
            return with_saved(saved, session.write_recipe(panel.moves(controls), name or "recipe"))

        save_photo.click(user_errors(photo_file), [face_key, fmt, saved_files, *panel.inputs], [downloads, saved_files])
        save_recipe.click(user_errors(recipe_file), [recipe_name, saved_files, *panel.inputs], [downloads, saved_files])

        # --- explore ----------------------------------------------------------------------------------------

        samples: dict[str, object] = {}

        def view(angle, x, y) -> InputTransform | None:
            return InputTransform((float(x or 0), float(y or 0)), float(angle or 0)) if session.can_transform else None

        def draw_sample(seed_value, psi, class_value, angle, x, y, *controls):
            class_index = int(class_value or 0) if session.num_classes else None
            samples["code"] = session.sample(int(seed_value or 0), float(psi), class_index)
            return for_display(session.render_sample(samples["code"], explore.moves(controls), view(angle, x, y)))

        def move_sample(angle, x, y, *controls):
            if "code" not in samples:
                return gr.update()
            return for_display(session.render_sample(samples["code"], explore.moves(controls), view(angle, x, y)))

        view_controls = [rotate, shift_x, shift_y]
        sample_button.click(user_errors(draw_sample), [seed, truncation, class_box, *view_controls, *explore.inputs], [sample_image])
        explore.wire(user_errors(move_sample), view_controls, [sample_image])
        for control in view_controls:
            control.release(user_errors(move_sample), [*view_controls, *explore.inputs], [sample_image], show_progress="hidden")

        def name_direction(direction, name, sign):
            path = session.save_label(int(direction), name or "", -1 if sign == "-" else 1)
            return [f"Saved **{name}** = direction {int(direction)} in {path}", *panel.relabel(), *explore.relabel()]

        label_button.click(user_errors(name_direction), [label_direction, label_name, label_sign],
                           [label_status, *panel.sliders, *explore.sliders])
    return app


def launch(session: EditorSession, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           steps: int = 100, say: Callable[[str], None] = print, block: bool = True):
    """Start the app on host:port (a free port by default); say the address. Returns (app, url)."""
    app = build_app(session, steps=steps)
    try:
        port = port or free_port(host)
    except OSError as exc:
        raise UserError(f"--host {host}: cannot serve on this address ({exc.strerror or exc})") from None
    app.queue(default_concurrency_limit=1)
    try:
        _, local_url, share_url = app.launch(server_name=host, server_port=port, share=share, inbrowser=False,
                                             prevent_thread_lock=True, quiet=True, show_error=False,
                                             allowed_paths=[str(session.out.resolve())], css=CSS, footer_links=[],
                                             max_file_size=MAX_UPLOAD_BYTES,
                                             app_kwargs={"middleware": [Middleware(UploadLimitInOurWords)]})
    except OSError as exc:
        raise UserError(f"--port {port}: cannot serve there ({str(exc).splitlines()[0]}); choose another port or leave "
                        f"--port out for a free one") from None
    url = f"http://{host}:{port}/"
    say(f"sefa-edit ui: {url}" + (f" (public link: {share_url})" if share_url else "") + " - Ctrl-C stops it")
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return app, url
