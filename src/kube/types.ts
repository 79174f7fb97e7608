/** The few fields of Kubernetes objects kf reads; the API returns more, which we ignore. */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: unknown[];
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface Pod {
  metadata: ObjectMeta;
  spec?: { containers?: { name: string; ports?: ContainerPort[] }[]; nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; lastTransitionTime?: string }[];
  };
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
}

export interface Service {
  metadata: ObjectMeta;
  spec?: { selector?: Record<string, string>; ports?: ServicePort[]; type?: string; externalName?: string };
}

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

/** Deployment, StatefulSet and ReplicaSet share this shape. */
export interface Workload {
  metadata: ObjectMeta;
  spec?: {
    selector?: { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] };
  };
}
