"""rd_vla_node: cameras + joint states in, adaptive action chunks out to a bimanual controller.

A managed (lifecycle) node:
    configure   validate parameters, load the robot description and the checkpoint onto the device
    activate    start inference: a worker thread re-plans when the execution horizon runs out
    deactivate  stop at once: no more commands; a hold (current positions) if motion was enabled
    cleanup     release the model (and GPU memory)
SIGINT/SIGTERM walk it down (deactivate, so a hold when motion was enabled; then shutdown) before
ROS is shut down (main()).

This module is wiring: parameters, subscriptions, publishers, the lifecycle and the inference
thread. What runs on that thread (when to re-plan, blending, the safety filter, holds) is the
ROS-free runtime.ControlLoop; callbacks convert messages (ros.inputs.InputFeed) and store the
latest one per input. Motion commands (one JointTrajectory per arm) are published only while
`motion_enabled` is true and only from finite, limited chunks; ~/action_chunk and /diagnostics
are published whenever the node is active.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

import torch
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool

from rd_vla_ros.model.checkpoint import CheckpointError
from rd_vla_ros.paths import resolve_checkpoint
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros import params as P
from rd_vla_ros.ros.conversions import diagnostic_array
from rd_vla_ros.ros.inputs import InputFeed
from rd_vla_ros.ros.lifecycle import ManagedNode, run_managed
from rd_vla_ros.ros.node_io import NodeOutputs, subscribe_inputs
from rd_vla_ros.runtime.blending import ChunkBlender
from rd_vla_ros.runtime.control_loop import ControlLoop
from rd_vla_ros.runtime.joints import JointMapper
from rd_vla_ros.runtime.loading import load_runner
from rd_vla_ros.runtime.observation import ObservationAssembler
from rd_vla_ros.runtime.runner import PolicyRunner
from rd_vla_ros.runtime.safety import SafetyFilter
from rd_vla_ros.runtime.stats import NodeStats, RateMeter, diagnostic_groups


class RDVLANode(ManagedNode):
    def __init__(self, node_name: str = "rd_vla_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in P.PARAMS:  # an empty list has no type for rclpy: declared by its type, unset reads as []
            default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
            self.declare_parameter(spec.name, default, spec.descriptor())
        self.declare_parameter("autostart", False, P.ParamSpec("autostart", False, "configure and activate at "
                               "start-up (no lifecycle manager needed)", read_only=True).descriptor())  # fmt: skip
        self.values: dict[str, Any] = {p.name: P.declared_value(self, p) for p in P.PARAMS}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.loop: ControlLoop | None = None  # built on configure
        self.robot: RobotDescription | None = None
        self.feed: InputFeed | None = None
        self.rates: dict[str, RateMeter] = {}
        self.runtime_name = "none"  # e.g. "torch cpu", "onnxruntime CUDAExecutionProvider,CPUExecutionProvider"
        self._idle_stats = NodeStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._input_subscriptions: list[Any] = []
        self._activity_timers: list[Any] = []
        self.outputs: NodeOutputs | None = None  # publishers, made on configure
        self._enable_motion_service: Any = None
        # rclpy's signal thread wakes the executors *before* it shuts the context down (rclpy
        # signal_handler.cpp), so a spin() woken early goes back to waiting; when every other timer runs
        # on a stopped /clock (use_sim_time, bag ended) nothing would wake it again and SIGINT/SIGTERM
        # would be ignored. A steady-clock timer bounds that wait (0.25 s); main()'s own signal handlers
        # run when it returns.
        self._shutdown_poll = self.create_timer(0.25, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))

    @property
    def stats(self) -> NodeStats:
        return self.loop.stats if self.loop else self._idle_stats

    @property
    def runner(self) -> PolicyRunner | None:
        return self.loop.runner if self.loop else None

    @property
    def assembler(self) -> ObservationAssembler | None:
        return self.loop.assembler if self.loop else None

    # ------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self.values
        reason = P.validate(v)
        if reason:
            self.get_logger().error(f"configure: invalid parameters: {reason}")
            return TransitionCallbackReturn.FAILURE
        try:
            self.robot = RobotDescription.load(v["robot_description"])  # YAML, .urdf, or URDF XML
            directory = resolve_checkpoint(v["checkpoint"])
            threads = P.torch_threads(v["torch_threads"])
            torch.set_num_threads(threads)
            runner, self.runtime_name = load_runner(
                directory, self.robot.joint_names, v["camera_names"], P.inference_settings(v), v["runtime"],
                v["device"], v["backbone_dtype"], threads,
            )  # fmt: skip
        except (OSError, ValueError, RuntimeError, CheckpointError, ImportError) as err:
            self.get_logger().error(f"configure: cannot load the model: {err}")
            self._release_model()
            return TransitionCallbackReturn.FAILURE
        safety = SafetyFilter.for_robot(self.robot, velocity_scale=v["safety.velocity_scale"],
                                        velocity_reference=v["safety.velocity_reference"],
                                        max_tracking_error=v["safety.max_tracking_error"])  # fmt: skip
        assembler = ObservationAssembler(list(v["camera_names"]), P.assembly_limits(v), v["instruction"])
        self.outputs = NodeOutputs(self, v, self.robot)
        self.loop = ControlLoop(runner, assembler, safety, self._now, self.outputs, threading.Lock(),
                                v["motion_enabled"], v["safety.hold_timeout_s"])  # fmt: skip
        joints = JointMapper(self.robot.joint_names, *P.joint_naming(v))
        self.feed = InputFeed(assembler, joints, self.loop.inputs_lock)
        self._create_interfaces()
        gc.freeze()  # the model lives until cleanup: full collections (~0.2 s on 2 cores) stop scanning it
        cfg = runner.policy.config
        self.get_logger().info(
            f"configured: {self.runtime_name}: {directory} ({torch.get_num_threads()} threads), "
            f"{len(cfg.joint_names)} joints, cameras "
            f"{cfg.camera_names}, chunk {cfg.head.chunk_length} x {cfg.control_period_s * 1e3:.0f} ms"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        loop = self.loop
        warmup_ms: list[float] = []
        if loop is not None and self.values["warmup_runs"] > 0:
            try:
                with torch.no_grad():
                    seconds = loop.runner.warm_up(self.values["instruction"], self.values["warmup_runs"])
            except (RuntimeError, ValueError) as err:  # a model that cannot run must not be activated
                self.get_logger().error(f"activate: warm-up inference failed: {err}")
                return TransitionCallbackReturn.FAILURE
            warmup_ms = [s * 1e3 for s in seconds]
            self.get_logger().info(
                f"warm-up: {len(seconds)} inferences at {loop.runner.settings.max_iterations} iterations, "
                + ", ".join(f"{ms:.1f}" for ms in warmup_ms)
                + " ms"
            )
        if loop is not None:
            loop.start(self.values["inputs.settle_s"], ChunkBlender(self.values["blending.mode"],
                                                                     self.values["blending.decay"]))  # fmt: skip
            loop.stats.warmup_ms = warmup_ms
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="rd_vla_inference", daemon=True)
        self._worker.start()
        period = loop.period_ns / 1e9 if loop else 0.02
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
        was_active = self.loop is not None and self.loop.active
        self.stop_inference()
        if was_active and self.values["motion_enabled"]:  # active -> shutdown skips deactivate
            self._final_hold("shutting down")
        self._destroy_interfaces()
        self._release_model()
        return TransitionCallbackReturn.SUCCESS

    def stop_inference(self) -> None:
        """Stop the inference thread and the node's timers: deactivation, shutdown, or the process
        ending without the lifecycle being walked (then before destroy_node)."""
        if self.loop is not None:
            self.loop.active = False
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
        self.loop = None
        gc.unfreeze()  # frozen objects are never collected: the model's reference cycles would stay
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------ interfaces
    def _create_interfaces(self) -> None:
        self._input_subscriptions = subscribe_inputs(self, self.values, self._on_image, self._on_joint_state,
                                               self._on_instruction)  # fmt: skip
        self.rates = {name: RateMeter() for name in [*self.values["camera_names"], "joint_states"]}
        self._enable_motion_service = self.create_service(SetBool, "~/enable_motion", self._on_enable_motion)

    def _destroy_interfaces(self) -> None:
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions = []
        if self._enable_motion_service is not None:
            self.destroy_service(self._enable_motion_service)
            self._enable_motion_service = None
        if self.outputs is not None:
            self.outputs.destroy()
            self.outputs = None

    # ------------------------------------------------------------------------------ callbacks
    def _on_image(self, name: str, msg: Image | CompressedImage) -> None:
        self._on_input(name, lambda feed, now: feed.image(name, msg, now))

    def _on_joint_state(self, msg: JointState) -> None:
        self._on_input("joint_states", lambda feed, now: feed.joint_state(msg, now))

    def _on_input(self, name: str, store: Any) -> None:
        """Store one message through the feed; count and log a rejection; wake the inference thread
        when it waits for a new input."""
        now = self._now()
        if self.feed is None or self.loop is None:
            return
        why = store(self.feed, now)
        if why:
            self._reject(name, why)
            return
        self.rates[name].tick(now)
        if self.loop.input_arrived(now):
            self._wake.set()

    def _on_instruction(self, msg: String) -> None:
        if self.feed is None or self.loop is None:
            return
        previous = self.loop.assembler.instruction.value
        why = self.feed.instruction(msg, self._now())
        if why:
            self._reject("instruction", why)
            return
        if msg.data.strip() != previous:  # drivers may repeat it: log changes only
            self.get_logger().info(f"instruction: '{msg.data.strip()}'")

    def _reject(self, input_name: str, reason: str) -> None:
        """Count a bad message and log it, at most every 2 s per input."""
        self.stats.rejected[input_name] += 1
        total = self.stats.rejected[input_name]
        self.loop.log("warning", f"rejected {input_name} message ({total} so far): {reason}", f"reject {input_name}")

    def _on_enable_motion(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        result = self.set_parameters([Parameter("motion_enabled", value=bool(request.data))])[0]
        response.success = result.successful
        response.message = result.reason or f"motion {'enabled' if request.data else 'disabled'}"
        return response

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        if self.loop is not None and any(p.name == "use_sim_time" for p in parameters):
            reason = ("use_sim_time can change only while the node is unconfigured: every input stamp, age "
                      "limit and re-plan is measured on that clock")  # fmt: skip
            self.get_logger().warning(f"rejected parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        changes = {p.name: p.value for p in parameters if p.name in P.SPECS}
        proposed = {**self.values, **changes}
        reason = P.validate(proposed)
        if reason:
            self.get_logger().warning(f"rejected parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        if self.loop is None:
            self.values = proposed
        else:
            with self.loop.command_lock:  # one step against the inference thread's commands
                self.values = proposed
                P.apply_to_loop(self.loop, proposed, changes, self._now())
        if changes:
            self.get_logger().info("parameters: " + ", ".join(f"{k}={v}" for k, v in changes.items()))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------- inference
    def _work(self) -> None:
        loop = self.loop
        while loop is not None and not self._stop.is_set():
            self._wake.clear()  # before the step: a wake-up set during it is not lost
            delay_s = loop.step()
            self._wake.wait(timeout=delay_s)

    def _final_hold(self, why: str) -> None:
        """A hold before the commands stop for good, waited for until the controllers acknowledged it
        (reliable subscribers; at most 0.5 s per topic), so it is not lost with the publishers."""
        if self.loop is not None and self.loop.hold(why) and self.outputs is not None:
            self.outputs.wait_for_commands_acked(0.5)

    # ------------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        loop = self.loop
        if self.outputs is None or loop is None:
            return
        with loop.inputs_lock:
            inputs = {**loop.assembler.cameras, "joint_states": loop.assembler.joints}
        s = loop.runner.settings
        groups = diagnostic_groups(self._now(), loop.stats, loop.scheduler, inputs, self.rates,
                                   f"{s.halting} {s.threshold}", self.runtime_name, loop.motion_enabled)  # fmt: skip
        self.outputs.diagnostics_pub.publish(
            diagnostic_array(groups, self.get_clock().now().to_msg(), self.get_fully_qualified_name())
        )

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds


def main(argv: list[str] | None = None) -> int:
    return run_managed(RDVLANode, argv)


if __name__ == "__main__":
    sys.exit(main())
