"""Bad-input catalogue: ONNX Runtime's TensorQuantOverrides rules (tensor_quant_overrides.py is_valid and the
quantizer's own checks), one case a rule. Each ends in one error line naming
quantization.onnx_extra_options.TensorQuantOverrides.<tensor> and the rule, exit code 2, nothing written.
The model is digits_mlp.onnx: weights.0 [64, 128], weights.1 [128, 64], /Relu_output_0 an activation."""

KEY = "quantization.onnx_extra_options.TensorQuantOverrides."


def tqo_case(make_case, overrides, tensor, words, **extra):
    def mutate(cfg, d):
        ex = cfg["quantization"]["onnx_extra_options"]
        ex["TensorQuantOverrides"] = overrides
        ex.update(extra)
    return make_case(mutate, [KEY + tensor if tensor else KEY[:-1]] + list(words))


def tqo_cases(make_case):
    """make_case(mutate, words) -> a config case (test_bad_inputs.config_case)."""
    w, a = "weights.0", "/Relu_output_0"
    c = lambda *args, **kw: tqo_case(make_case, *args, **kw)  # noqa: E731
    return [
        ("tqo_not_a_map", c([w], "", ["expected a map"])),
        ("tqo_not_a_list", c({w: {"quant_type": "QInt8"}}, w, ["expected a list"])),
        ("tqo_dict_not_a_map", c({w: ["QInt8"]}, w, ["expected a map"])),
        ("tqo_unknown_tensor", c({"no_such_tensor": [{"quant_type": "QInt8"}]}, "no_such_tensor", ["no tensor"])),
        ("tqo_unknown_key", c({w: [{"quant_typ": "QInt8"}]}, w, ["quant_typ"])),
        ("tqo_bad_quant_type", c({w: [{"quant_type": "QInt7"}]}, w, ["QInt7"])),
        ("tqo_scale_without_zero_point", c({a: [{"scale": 0.1}]}, a, ["scale", "zero_point", "together"])),
        ("tqo_zero_point_without_scale", c({a: [{"zero_point": 3}]}, a, ["scale", "zero_point", "together"])),
        ("tqo_scale_with_symmetric", c({a: [{"scale": 0.1, "zero_point": 0, "symmetric": True}]}, a, ["symmetric"])),
        ("tqo_scale_with_rmin", c({a: [{"scale": 0.1, "zero_point": 0, "rmin": -1.0}]}, a, ["rmin"])),
        ("tqo_scale_with_reduce_range", c({w: [{"scale": 0.1, "zero_point": 0, "reduce_range": True}]}, w,
                                          ["reduce_range"])),
        ("tqo_scale_not_positive", c({a: [{"scale": 0.0, "zero_point": 0}]}, a, ["scale", "> 0"])),
        ("tqo_scale_float32_overflow", c({a: [{"scale": 1e39, "zero_point": 0}]}, a, ["scale", "float32"])),
        ("tqo_scale_float32_underflow", c({a: [{"scale": 1e-50, "zero_point": 0}]}, a, ["scale", "float32"])),
        ("tqo_convert_scale_float32_underflow", c({a: [{"convert": {"quant_type": "QUInt16", "scale": 1e-50,
                                                                    "zero_point": 0}}]}, a, ["scale", "float32"])),
        ("tqo_rmax_float32_overflow", c({a: [{"rmin": -1.0, "rmax": 1e39}]}, a, ["rmax", "float32"])),
        ("tqo_weight_rmin_float32_overflow", c({w: [{"rmin": -1e39}]}, w, ["rmin", "float32"])),
        ("tqo_unknown_tensor_empty_list", c({"no_such_tensor": []}, "no_such_tensor", ["no tensor"])),
        ("tqo_zero_point_range", c({a: [{"quant_type": "QInt8", "scale": 0.1, "zero_point": 200}]}, a, ["200"])),
        ("tqo_reduce_range_activation", c({a: [{"reduce_range": True}]}, a, ["reduce_range", "initializers"])),
        ("tqo_per_channel_activation", c({a: [{"axis": 1}]}, a, ["initializer"])),
        ("tqo_per_channel_no_axis", c({w: [{"quant_type": "QInt8"}, {"quant_type": "QInt8"}]}, w, ["axis"])),
        ("tqo_axis_out_of_bounds", c({w: [{"axis": 2}]}, w, ["axis 2", "out of bounds"])),
        ("tqo_channel_count", c({w: [{"axis": 1}, {}, {}]}, w, ["3 channel dicts", "128 channels"])),
        ("tqo_channel_quant_type_differs", c({w: [{"axis": 1, "quant_type": "QInt8"}, {"quant_type": "QUInt8"}]}, w,
                                             ["quant_type", "differs"])),
        ("tqo_channel_axis_differs", c({w: [{"axis": 1}, {"axis": 0}]}, w, ["axis", "differs"])),
        ("tqo_channel_symmetric_differs", c({w: [{"axis": 1, "symmetric": True}, {"symmetric": False}]}, w,
                                            ["symmetric", "differs"])),
        ("tqo_channel_reduce_range_differs", c({w: [{"axis": 1}, {"reduce_range": True}]}, w,
                                               ["reduce_range", "differs"])),
        ("tqo_channel_scale_missing", c({w: [{"axis": 1, "scale": 0.1, "zero_point": 0}, {}]}, w,
                                        ["scale", "every channel"])),
        ("tqo_channel_rmin_missing", c({w: [{"axis": 1, "rmin": -1.0, "rmax": 1.0}, {}]}, w, ["rmin", "every channel"])),
        ("tqo_channel_rmin_alone", c({w: [{"axis": 1, "rmin": -1.0}]}, w, ["rmin", "rmax"])),
        ("tqo_one_scale_many_channels", c({w: [{"axis": 1, "scale": 0.1, "zero_point": 0}]}, w,
                                          ["one dict", "scale/zero_point", "128 channels"])),
        ("tqo_convert_initializer", c({w: [{"convert": {"quant_type": "QUInt16"}}]}, w, ["convert", "initializers"])),
        ("tqo_convert_no_quant_type", c({a: [{"convert": {"symmetric": True}}]}, a, ["convert", "quant_type"])),
        ("tqo_convert_same_type", c({a: [{"quant_type": "QUInt8", "convert": {"quant_type": "QUInt8"}}]}, a,
                                    ["convert", "must differ"])),
        ("tqo_convert_default_type", c({a: [{"convert": {"quant_type": "QInt8"}}]}, a, ["convert", "must differ"])),
        ("tqo_convert_reduce_range", c({a: [{"convert": {"quant_type": "QUInt16", "reduce_range": True}}]}, a,
                                       ["convert.reduce_range", "initializers"])),
        ("tqo_convert_scale_without_zero_point", c({a: [{"convert": {"quant_type": "QUInt16", "scale": 0.1}}]}, a,
                                                   ["convert", "together"])),
        ("tqo_convert_scale_with_rmax", c({a: [{"convert": {"quant_type": "QUInt16", "scale": 0.1, "zero_point": 0,
                                                            "rmax": 1.0}}]}, a, ["convert", "rmax"])),
        ("tqo_convert_zero_point_range", c({a: [{"convert": {"quant_type": "QUInt8", "scale": 0.1,
                                                             "zero_point": -1}}]}, a, ["convert", "-1"])),
        ("tqo_convert_unknown_recv_node", c({a: [{"convert": {"quant_type": "QUInt16", "recv_nodes": ["/MatMul"]}}]},
                                            a, ["recv_nodes", "/MatMul"])),
        ("tqo_convert_per_channel", c({w: [{"axis": 1, "convert": {"quant_type": "QUInt16"}}]}, w,
                                      ["convert", "per-channel"])),
        ("tqo_also_in_weights_tensor_override", c({w: [{"quant_type": "QInt8"}]}, w, ["weights_tensor_override"],
                                                  weights_tensor_override=[[w, {"quant_type": "Int8"}]])),
        ("tqo_also_in_activations_tensor_override", c({a: [{"quant_type": "QUInt8"}]}, a,
                                                      ["activations_tensor_override"],
                                                      activations_tensor_override=[[a, {"quant_type": "UInt8"}]])),
    ]


def tqo_model_cases(make_case_bn):
    """Cases on digits_mobilenet_bn.onnx, whose BatchNormalizations pre-processing folds into the Convs.
    make_case_bn(mutate, words) -> a config case on that model."""
    def mutate(cfg, d):
        ex = cfg["quantization"]["onnx_extra_options"]
        ex["TensorQuantOverrides"] = {"features.0.weight": [{"quant_type": "QInt8"}]}
    def axis(cfg, d):  # axis 1 of a folded Conv weight: not its output-channel axis (ORT raises)
        ex = cfg["quantization"]["onnx_extra_options"]
        ex["TensorQuantOverrides"] = {"ConvBnFusion_W_features.0.weight": [{"axis": 1}]}
    return [("tqo_bn_folded_raw_name", make_case_bn(mutate, [KEY + "features.0.weight",
                                                           "did you mean 'ConvBnFusion_W_features.0.weight'"])),
            ("tqo_axis_not_conv_channel", make_case_bn(axis, [KEY + "ConvBnFusion_W_features.0.weight", "axis 1",
                                                             "Conv '", "use axis 0"]))]
