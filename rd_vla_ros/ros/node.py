"""rd_vla_node: cameras + joint states in, adaptive action chunks out to a bimanual controller.

A managed (lifecycle) node:
    configure   validate parameters, load the robot description and the checkpoint onto the device
    activate    start inference: a worker thread re-plans when the execution horizon runs out
    deactivate  stop at once: no more commands; a hold (current positions) if motion was enabled
    cleanup     release the model (and GPU memory)
SIGINT/SIGTERM walk it down (deactivate, so a hold when motion was enabled; then shutdown) before
ROS is shut down (main()).

Callbacks only convert messages and store the latest one per input; inference runs on its own
thread, at most one at a time, always on the newest observation. Motion commands (one
JointTrajectory per arm) are published only while `motion_enabled` is true and only from finite,
clamped chunks; ~/action_chunk and /diagnostics are published whenever the node is active.
"""

from __future__ import annotations

import gc
import math
import signal
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from rd_vla_ros.model.checkpoint import CheckpointError, load_policy
from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.paths import resolve_checkpoint, resolve_config
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros import params as P
from rd_vla_ros.ros.conversions import action_chunk_to_msg, joint_trajectory
from rd_vla_ros.ros.inputs import InputFeed
from rd_vla_ros.runtime.blending import ChunkBlender
from rd_vla_ros.runtime.chunk import ActionChunkData
from rd_vla_ros.runtime.joints import JointMapper
from rd_vla_ros.runtime.observation import ObservationAssembler, block_kind
from rd_vla_ros.runtime.runner import InvalidOutputError, PolicyRunner
from rd_vla_ros.runtime.safety import SafetyFilter
from rd_vla_ros.runtime.scheduler import ReplanScheduler
from rd_vla_ros.runtime.stats import NodeStats, RateMeter, diagnostic_groups


class RDVLANode(LifecycleNode):
    def __init__(self, node_name: str = "rd_vla_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in P.PARAMS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self.declare_parameter("autostart", False, P.ParamSpec("autostart", False, "configure and activate at "
                               "start-up (no lifecycle manager needed)", read_only=True).descriptor())  # fmt: skip
        self.values: dict[str, Any] = {p.name: self.get_parameter(p.name).value for p in P.PARAMS}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = NodeStats()
        self.rates: dict[str, RateMeter] = {}
        self.runner: PolicyRunner | None = None
        self.robot: RobotDescription | None = None
        self.assembler: ObservationAssembler | None = None
        self.mapper: JointMapper | None = None
        self.feed: InputFeed | None = None
        self.runtime_name = "none"  # e.g. "torch cpu", "onnxruntime CUDAExecutionProvider,CPUExecutionProvider"
        self._lock = threading.Lock()  # guards the assembler's latest inputs
        # makes "motion enabled? then publish" one step against disabling motion (which publishes a hold):
        # without it a trajectory the worker was about to send could follow the hold. Taken before _lock.
        self._command_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._active = False
        self.scheduler = ReplanScheduler(period_ns=20_000_000)  # rebuilt on activation with the real period
        self.blender = ChunkBlender()
        self._overload_log_ns = 0  # last "horizon shorter than inference allows" warning (ROS time)
        self._sequence = 0
        self._last_command_ns = 0
        self._hold_sent = False
        self.safety: SafetyFilter | None = None  # limits for every command (built on configure)
        self._entities: list[Any] = []
        self._activity_timers: list[Any] = []
        self._last_reject_log: dict[str, float] = {}
        self.chunk_pub: Any = None
        self.diag_pub: Any = None
        self.arm_pubs: list[Any] = []
        self.gripper_pubs: list[Any] = []
        # rclpy's signal thread wakes the executors *before* it shuts the context down (rclpy
        # signal_handler.cpp), so a spin() woken early goes back to waiting; when every other timer runs
        # on a stopped /clock (use_sim_time, bag ended) nothing would wake it again and SIGINT/SIGTERM
        # would be ignored. A steady-clock timer bounds that wait (0.25 s); main()'s own signal handlers
        # run when it returns.
        self._shutdown_poll = self.create_timer(0.25, _nothing, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        reason = P.validate(self.values)
        if reason:
            self.get_logger().error(f"configure: invalid parameters: {reason}")
            return TransitionCallbackReturn.FAILURE
        try:
            self.robot = RobotDescription.from_yaml(resolve_config(self.values["robot_description"]))
            directory = resolve_checkpoint(self.values["checkpoint"])
            device = torch.device(self.values["device"])
            torch.set_num_threads(P.torch_threads(self.values["torch_threads"]))
            if self.values["runtime"] == "onnxruntime":
                from rd_vla_ros.export.runtime import OnnxPolicy

                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else [
                    "CPUExecutionProvider"]  # fmt: skip
                policy = OnnxPolicy(directory, providers, P.torch_threads(self.values["torch_threads"]))
                self.runtime_name = f"onnxruntime {','.join(policy.providers)}" + (
                    " (loop graph for action_mse/fixed depth)" if policy.loop else " (host loop)"
                )
            else:
                policy = load_policy(directory, device).half_backbone(getattr(torch, self.values["backbone_dtype"]))
                self.runtime_name = f"torch {device}" + (
                    f" (backbone {self.values['backbone_dtype']})" if self.values["backbone_dtype"] != "float32" else ""
                )
            self.runner = PolicyRunner(
                policy, self.robot.joint_names, self.values["camera_names"], P.inference_settings(self.values)
            )
        except (OSError, ValueError, RuntimeError, CheckpointError, ImportError) as err:
            self.get_logger().error(f"configure: cannot load the model: {err}")
            self._release_model()
            return TransitionCallbackReturn.FAILURE
        cfg = self.runner.policy.config
        self.mapper = JointMapper(self.robot.joint_names)
        v = self.values
        self.safety = SafetyFilter.for_robot(self.robot, velocity_scale=v["safety.velocity_scale"],
                                             velocity_reference=v["safety.velocity_reference"],
                                             max_tracking_error=v["safety.max_tracking_error"])  # fmt: skip
        self.assembler = ObservationAssembler(
            list(self.values["camera_names"]), P.assembly_limits(self.values), self.values["instruction"]
        )
        self.feed = InputFeed(self.assembler, self.mapper, self._lock)
        self._create_interfaces()
        gc.freeze()  # the model lives until cleanup: full collections (~0.2 s on 2 cores) stop scanning it
        self.get_logger().info(
            f"configured: {self.runtime_name}: {directory} ({torch.get_num_threads()} threads), "
            f"{len(cfg.joint_names)} joints, cameras "
            f"{cfg.camera_names}, chunk {cfg.head.chunk_length} x {cfg.control_period_s * 1e3:.0f} ms"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stats = NodeStats()
        if self.runner is not None and self.values["warmup_runs"] > 0:
            try:
                with torch.no_grad():
                    seconds = self.runner.warm_up(self.values["instruction"], self.values["warmup_runs"])
            except (RuntimeError, ValueError) as err:  # a model that cannot run must not be activated
                self.get_logger().error(f"activate: warm-up inference failed: {err}")
                return TransitionCallbackReturn.FAILURE
            self.stats.warmup_ms = [s * 1e3 for s in seconds]
            self.get_logger().info(
                f"warm-up: {len(seconds)} inferences at {self.runner.settings.max_iterations} iterations, "
                + ", ".join(f"{s * 1e3:.1f}" for s in seconds)
                + " ms"
            )
        self._sequence = 0
        if self.runner is not None:
            self.runner.reset()  # a warm start begins cold after every activation
        period_s = self.runner.policy.config.control_period_s if self.runner else 0.02
        self.scheduler = ReplanScheduler(round(period_s * 1e9), round(self.values["inputs.settle_s"] * 1e9))
        self.blender = ChunkBlender(self.values["blending.mode"], self.values["blending.decay"])
        self._last_command_ns = self._now()
        self._hold_sent = False
        if self.safety is not None:
            self.safety.reset()  # the first command starts from the measured position
        self._stop.clear()
        self._active = True
        self._worker = threading.Thread(target=self._work, name="rd_vla_inference", daemon=True)
        self._worker.start()
        period = self.runner.policy.config.control_period_s if self.runner else 0.02
        self._activity_timers = [self.create_timer(self.values["diagnostics_period_s"], self._publish_diagnostics)]
        if self.get_clock().ros_time_is_active:
            # simulated time: the inference thread's sleeps are wall-clock, so a timer on the ROS clock
            # also wakes it every control period (on the system clock its own timeouts are exact)
            self._activity_timers.append(self.create_timer(period, self._wake.set))
        self.get_logger().info(f"active; motion {'ENABLED' if self.values['motion_enabled'] else 'disabled'}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_inference()
        if self.values["motion_enabled"]:
            self._final_hold("deactivated")
        self.get_logger().info("inactive: no more commands")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_interfaces()
        self._release_model()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        was_active = self._active
        self.stop_inference()
        if was_active and self.values["motion_enabled"]:  # active -> shutdown skips deactivate
            self._final_hold("shutting down")
        self._destroy_interfaces()
        self._release_model()
        return TransitionCallbackReturn.SUCCESS

    @property
    def lifecycle_state(self) -> str:
        """'unconfigured', 'inactive', 'active', 'finalized', ... (rclpy keeps it in _state_machine)."""
        return str(self._state_machine.current_state[1])

    def end(self, why: str) -> None:
        """The process is ending (SIGINT/SIGTERM, or an error): leave the lifecycle as an operator would.
        Deactivate if active (a hold at the measured positions when motion was enabled, waited for until
        the controllers acknowledged it, at most 0.5 s per topic), then shut down (release the model)."""
        state = self.lifecycle_state
        self.get_logger().info(f"{why}: ending from {state}")
        if state == "active":
            self.trigger_deactivate()
        if self.lifecycle_state in ("unconfigured", "inactive", "active"):
            self.trigger_shutdown()
        self.stop_inference()  # whatever state a failed transition left

    def stop_inference(self) -> None:
        """Stop the inference thread and the node's timers: deactivation, shutdown, or the process
        ending without the lifecycle being walked (then before destroy_node)."""
        self._active = False
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        for timer in self._activity_timers:
            self.destroy_timer(timer)
        self._activity_timers = []

    def destroy_node(self) -> None:
        """Destroying an active node (a test's teardown, a process ending without the lifecycle being
        walked) stops the inference thread first: it must never publish through a destroyed handle."""
        self.stop_inference()
        super().destroy_node()

    def _release_model(self) -> None:
        self.runner = None
        gc.unfreeze()  # frozen objects are never collected: the model's reference cycles would stay
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------ interfaces
    def _create_interfaces(self) -> None:
        v = self.values
        reliability = ReliabilityPolicy.BEST_EFFORT if v["camera_qos"] == "sensor_data" else ReliabilityPolicy.RELIABLE
        camera_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
        image_type = Image if v["camera_transport"] == "raw" else CompressedImage
        for name, topic in zip(v["camera_names"], v["camera_topics"], strict=True):
            self._entities.append(
                self.create_subscription(image_type, topic, lambda m, n=name: self._on_image(n, m), camera_qos)
            )
            self.rates[name] = RateMeter()
        self.rates["joint_states"] = RateMeter()
        self._entities.append(self.create_subscription(JointState, v["joint_state_topic"], self._on_joint_state, 10))
        self._entities.append(self.create_subscription(String, v["instruction_topic"], self._on_instruction, 10))
        self.chunk_pub = self.create_lifecycle_publisher(ActionChunk, "~/action_chunk", 10)
        self.arm_pubs = [
            self.create_lifecycle_publisher(JointTrajectory, topic, 10) for topic in v["arm_trajectory_topics"]
        ]
        self.gripper_pubs = (
            [self.create_lifecycle_publisher(JointTrajectory, t, 10) for t in v["gripper_topics"]]
            if v["gripper_mode"] == "separate"
            else []
        )
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._entities.append(self.create_service(SetBool, "~/enable_motion", self._on_enable_motion))
        arms = self.robot.arms if self.robot else ()
        if len(v["arm_trajectory_topics"]) != len(arms):
            self.get_logger().warning(
                f"{len(v['arm_trajectory_topics'])} arm_trajectory_topics for {len(arms)} arms: "
                "arms without a topic get no commands"
            )

    def _destroy_interfaces(self) -> None:
        for entity in self._entities:
            if hasattr(entity, "topic_name") and hasattr(entity, "handle"):
                self.destroy_subscription(entity)
            else:
                self.destroy_service(entity)
        self._entities = []
        for pub in [self.chunk_pub, self.diag_pub, *self.arm_pubs, *self.gripper_pubs]:
            if pub is not None:
                self.destroy_publisher(pub)
        self.arm_pubs, self.gripper_pubs = [], []
        self.chunk_pub = self.diag_pub = None

    # ------------------------------------------------------------------------------ callbacks
    def _on_image(self, name: str, msg: Image | CompressedImage) -> None:
        now = self._now()
        if self.feed is None:
            return
        why = self.feed.image(name, msg, now)
        if why:
            self._reject(name, why)
            return
        self.rates[name].tick(now)
        self._input_arrived(now)

    def _on_joint_state(self, msg: JointState) -> None:
        now = self._now()
        if self.feed is None:
            return
        why = self.feed.joint_state(msg, now)
        if why:
            self._reject("joint_states", why)
            return
        self.rates["joint_states"].tick(now)
        self._input_arrived(now)

    def _input_arrived(self, now: int) -> None:
        """Wake the inference thread if it waits for a new input (noting when the first one came)."""
        if self.scheduler.input_arrived(now):
            self._wake.set()

    def _on_instruction(self, msg: String) -> None:
        if self.feed is None:
            return
        previous = self.assembler.instruction.value if self.assembler else None
        why = self.feed.instruction(msg, self._now())
        if why:
            self._reject("instruction", why)
            return
        if msg.data.strip() != previous:  # drivers may repeat it: log changes only
            self.get_logger().info(f"instruction: '{msg.data.strip()}'")

    def _reject(self, input_name: str, reason: str) -> None:
        """Count a bad message and log it, at most every 2 s per input (rclpy throttles per call site)."""
        self.stats.rejected[input_name] += 1
        now = time.monotonic()
        if now - self._last_reject_log.get(input_name, -math.inf) >= 2.0:
            self._last_reject_log[input_name] = now
            total = self.stats.rejected[input_name]
            self.get_logger().warning(f"rejected {input_name} message ({total} so far): {reason}")

    def _on_enable_motion(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        result = self.set_parameters([Parameter("motion_enabled", value=bool(request.data))])[0]
        response.success = result.successful
        response.message = result.reason or f"motion {'enabled' if request.data else 'disabled'}"
        return response

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        if self.runner is not None and any(p.name == "use_sim_time" for p in parameters):
            reason = ("use_sim_time can change only while the node is unconfigured: every input stamp, age "
                      "limit and re-plan is measured on that clock")  # fmt: skip
            self.get_logger().warning(f"rejected parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        changes = {p.name: p.value for p in parameters if p.name in P.SPECS}
        proposed = dict(self.values)
        proposed.update(changes)
        reason = P.validate(proposed)
        if reason:
            self.get_logger().warning(f"rejected parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        with self._command_lock:
            was_enabled = self.values["motion_enabled"]
            self.values = proposed
            if self.runner is not None:
                self.runner.settings = P.inference_settings(proposed)
            if self.assembler is not None:
                with self._lock:
                    self.assembler.limits = P.assembly_limits(proposed)
                    if "instruction" in changes and proposed["instruction"]:
                        self.assembler.instruction.update(proposed["instruction"], self._now(), self._now())
            if was_enabled and not proposed["motion_enabled"] and self._active:
                self._publish_hold("motion disabled")
            if self.safety is not None:
                self.safety.velocity_scale = proposed["safety.velocity_scale"]
                self.safety.velocity_reference = proposed["safety.velocity_reference"]
                self.safety.max_tracking_error = proposed["safety.max_tracking_error"]
            if any(k.startswith("blending.") for k in changes):
                self.blender = ChunkBlender(proposed["blending.mode"], proposed["blending.decay"])
        if changes:
            self.get_logger().info("parameters: " + ", ".join(f"{k}={v}" for k, v in changes.items()))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------- inference
    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the step: a wake-up set during it is not lost
            delay_s = self._tick()
            self._wake.wait(timeout=delay_s)

    def _tick(self) -> float:
        """One scheduling step of the inference thread. Returns how long it may sleep before the next
        step: until the next re-plan is due (not rounded up to the control timer's tick), at most one
        control period. New inputs wake it early when it waits for an observation newer than the last
        one used (re-planning on the same inputs would repeat the same chunk)."""
        period_s = self.runner.policy.config.control_period_s if self.runner else 0.02
        now = self._now()
        if self._stop.is_set() or self.assembler is None or self.runner is None:
            return period_s
        self.scheduler.settle_ns = round(self.values["inputs.settle_s"] * 1e9)
        wait_ns = self.scheduler.before_assembly(now)
        if wait_ns is not None:
            return wait_ns / 1e9
        with self._lock:
            obs, reason = self.assembler.assemble(now)
        if obs is None:
            self.scheduler.blocked()
            self.stats.blocked[block_kind(reason)] += 1
            self.get_logger().warning(f"not running the policy: {reason}", throttle_duration_sec=2.0)
            self._maybe_hold(now)
            return period_s
        if not self.scheduler.accept(obs.stamp_ns):
            return period_s  # the same observation as last time: the input callbacks wake the thread
        try:
            chunk, _ = self.runner.run(obs, self._sequence)
        except InvalidOutputError as err:
            self.stats.invalid_outputs += 1
            self.get_logger().error(f"invalid model output, nothing published: {err}", throttle_duration_sec=2.0)
            return period_s
        except RuntimeError as err:  # e.g. out of (GPU) memory: the thread lives on, nothing is commanded
            self.stats.inference_failures += 1
            self.get_logger().error(f"inference failed, nothing published: {err}", throttle_duration_sec=2.0)
            self._maybe_hold(self._now(), "inference failing")
            return period_s
        self._publish_chunk(chunk, obs.joint_positions, now)
        return self.scheduler.sleep_after(self._now()) / 1e9

    def _publish_chunk(self, chunk: ActionChunkData, measured: np.ndarray, started_ns: int) -> None:
        if not self._active:
            self.stats.dropped_chunks += 1
            return
        self._sequence += 1
        self.stats.record_chunk(chunk.inference_latency_s, chunk.iterations, chunk.converged, chunk.observation_age_s)
        # re-plan so the next chunk is ready when this one's executed rows run out (latency in ROS time)
        finished_ns = self._now()
        self.scheduler.planned(chunk.stamp_ns, chunk.execution_horizon, started_ns, finished_ns)
        if self.scheduler.overloaded_streak >= 3 and finished_ns - self._overload_log_ns > 5_000_000_000:
            self._overload_log_ns = finished_ns
            latency_ms = (finished_ns - started_ns) / 1e6
            self.get_logger().warning(
                f"re-plans start late: the execution horizon ({chunk.execution_horizon} x "
                f"{chunk.control_period_s * 1e3:.0f} ms) is shorter than the observation's age plus twice the "
                f"inference time ({chunk.observation_age_s * 1e3:.0f} + 2 x {latency_ms:.0f} ms); "
                "lower halting.max_iterations, raise horizon.*.h_min, or run on a GPU"
            )
        self.chunk_pub.publish(action_chunk_to_msg(chunk))
        with self._command_lock:
            if self.values["motion_enabled"] and self._active:
                self._command(chunk, measured)

    def _command(self, chunk: ActionChunkData, measured: np.ndarray) -> None:
        period_ns = round(chunk.control_period_s * 1e9)
        if self._now() >= chunk.stamp_ns + chunk.execution_horizon * period_ns:  # every executed row is due already
            self.stats.late_chunks += 1
            self.get_logger().warning(
                f"chunk {chunk.sequence}: its {chunk.execution_horizon} executed rows are all in the past on "
                "arrival (inference slower than the horizon): not commanded",
                throttle_duration_sec=2.0,
            )
            if not self._hold_sent:
                self._publish_hold("chunk arrived too late")
            return
        rows = self.blender.blend(chunk.stamp_ns, chunk.positions, period_ns)[: chunk.execution_horizon]  # (H, J)
        safe, report = self.safety.command(rows, chunk.stamp_ns, chunk.control_period_s, measured)
        self.stats.position_clamps += report.position_clamps
        self.stats.velocity_clamps += report.velocity_clamps
        if report.tracking_reset:
            self.stats.tracking_resets += 1
            self.get_logger().warning(
                f"chunk {chunk.sequence}: the robot is more than safety.max_tracking_error from the last command "
                "(moved, reset or blocked): this chunk starts from its measured position",
                throttle_duration_sec=2.0,
            )
        if report.total:
            self.get_logger().warning(
                f"chunk {chunk.sequence}: clamped {report.position_clamps} position and {report.velocity_clamps} "
                "velocity targets",
                throttle_duration_sec=2.0,
            )
        self._publish_rows(safe, chunk.stamp_ns, chunk.control_period_s)
        self._last_command_ns = self._now()
        self._hold_sent = False

    def _publish_rows(self, rows: np.ndarray, stamp_ns: int, period_s: float) -> None:
        names = self.robot.joint_names
        separate = self.values["gripper_mode"] == "separate"
        for i, arm in enumerate(self.robot.arms):
            joints = list(arm.joints) if separate else list(arm.joint_names)
            cols = [names.index(j) for j in joints]
            if i < len(self.arm_pubs):
                self.arm_pubs[i].publish(joint_trajectory(joints, rows[:, cols], stamp_ns, period_s))
            if separate and arm.gripper and i < len(self.gripper_pubs):
                g = names.index(arm.gripper)
                self.gripper_pubs[i].publish(joint_trajectory([arm.gripper], rows[:, [g]], stamp_ns, period_s))

    def _maybe_hold(self, now: int, why: str = "inputs stale or missing") -> None:
        timeout_ns = int(self.values["safety.hold_timeout_s"] * 1e9)
        with self._command_lock:
            if self.values["motion_enabled"] and not self._hold_sent and now - self._last_command_ns > timeout_ns:
                self._publish_hold(why)

    def _final_hold(self, why: str) -> None:
        """A hold before the commands stop for good, waited for until the controllers acknowledged it
        (reliable subscribers; at most 0.5 s per topic), so it is not lost with the publishers."""
        self._publish_hold(why)
        for pub in [*self.arm_pubs, *self.gripper_pubs]:
            pub.wait_for_all_acked(Duration(seconds=0.5))

    def _publish_hold(self, why: str) -> None:
        if self.assembler is None or self.assembler.joints.count == 0 or self.safety is None:
            return
        with self._lock:
            current = np.array(self.assembler.joints.value, dtype=np.float64)
        hold, clamped = self.safety.hold(current)  # (J,) inside the limits, like every command
        self.stats.position_clamps += clamped
        self._publish_rows(hold[None, :], 0, self.runner.policy.config.control_period_s if self.runner else 0.02)
        self.blender.reset()  # and is not blended with what was planned before the hold
        self._hold_sent = True
        self.stats.holds += 1
        self.get_logger().warning(f"holding current positions ({why})")

    # ------------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        if self.diag_pub is None:
            return
        with self._lock:
            inputs = dict(self.assembler.cameras) if self.assembler else {}
            if self.assembler:
                inputs["joint_states"] = self.assembler.joints
        settings = self.runner.settings if self.runner else None
        groups = diagnostic_groups(
            self._now(), self.stats, self.scheduler, inputs, self.rates,
            f"{settings.halting} {settings.threshold}" if settings else "",
            self.runtime_name if self.runner else "none", self.values["motion_enabled"],
        )  # fmt: skip
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [
            DiagnosticStatus(level=DiagnosticStatus.WARN if g.warn else DiagnosticStatus.OK,
                             name=f"{self.get_fully_qualified_name()}: {g.name}", message=g.message,
                             hardware_id="rd_vla", values=[KeyValue(key=k, value=v) for k, v in g.values])
            for g in groups
        ]  # fmt: skip
        self.diag_pub.publish(array)

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds


def _nothing() -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    # Our own SIGINT/SIGTERM handling, not rclpy's: rclpy's shuts the context down at once, so no hold
    # could be published on the way out; here the signal only ends the spin loop and the lifecycle is
    # then walked down (deactivate: hold; shutdown: release) while the context still works.
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    ending: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        ending.append(signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = RDVLANode()
    executor = SingleThreadedExecutor()  # callbacks are thin; inference has its own thread
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value and not ending:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("autostart: configure failed")
            elif not ending:
                node.trigger_activate()
        # a signal's handler runs when spin_once returns: on the next callback, at the latest on the
        # node's 0.25 s steady-clock poll timer
        while not ending and rclpy.ok():
            executor.spin_once()
    finally:
        node.end(ending[0] if ending else "exiting")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
        gc.freeze()  # the interpreter's final collections skip frozen objects: exits 0.8 s sooner
    return 0


if __name__ == "__main__":
    sys.exit(main())
