// gRPC server reflection, v1 and v1alpha (docs/contract.md), so grpcurl,
// `buf curl` and Postman need no proto files. It serves every file compiled
// from proto/ and every file those import, with their comments (source info),
// from the set `npm run generate` writes (scripts/protoc-gen-descriptors.mjs):
// the types a client meets in error details (google.rpc.ErrorInfo) too, not
// only those a service's methods name. Both versions share one
// implementation: their messages are identical field for field.

import { create, createFileRegistry, type DescFile, type FileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { FILE_DESCRIPTOR_SET_BASE64 } from "../gen/descriptors.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

interface Answer {
  files?: Uint8Array[];
  services?: string[];
  extensionNumbers?: { type: string; numbers: number[] };
  error?: { code: Code; message: string };
}

/** Every proto file of the service and its imports, with comments, as generated. */
export function describedFiles(): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(FILE_DESCRIPTOR_SET_BASE64, "base64")));
}

export function createReflectionServices(registry: FileRegistry, serviceNames: string[]) {
  const answer = (req: Request): Answer => answerRequest(registry, serviceNames, req);

  const serviceV1: ServiceImpl<typeof v1.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(v1.ServerReflectionResponseSchema, toResponse(req, answer(req)) as never);
      }
    },
  };
  const serviceV1alpha: ServiceImpl<typeof v1alpha.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(v1alpha.ServerReflectionResponseSchema, toResponse(req, answer(req)) as never);
      }
    },
  };
  return { v1: serviceV1, v1alpha: serviceV1alpha };
}

function toResponse(req: Request, a: Answer) {
  const base = { validHost: req.host, originalRequest: req };
  if (a.error) {
    return { ...base, messageResponse: { case: "errorResponse", value: { errorCode: a.error.code, errorMessage: a.error.message } } };
  }
  if (a.services) {
    return { ...base, messageResponse: { case: "listServicesResponse", value: { service: a.services.map((name) => ({ name })) } } };
  }
  if (a.extensionNumbers) {
    return {
      ...base,
      messageResponse: {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: a.extensionNumbers.type, extensionNumber: a.extensionNumbers.numbers },
      },
    };
  }
  return { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: a.files ?? [] } } };
}

function answerRequest(registry: FileRegistry, serviceNames: string[], req: Request): Answer {
  const q = req.messageRequest;
  switch (q.case) {
    case "listServices":
      return { services: serviceNames };
    case "fileByFilename": {
      const file = registry.getFile(q.value);
      return file ? { files: withDependencies(file) } : notFound(`file "${q.value}"`);
    }
    case "fileContainingSymbol": {
      const file = fileOfSymbol(registry, q.value);
      return file ? { files: withDependencies(file) } : notFound(`symbol "${q.value}"`);
    }
    case "fileContainingExtension": {
      const extendee = registry.getMessage(q.value.containingType);
      const ext = extendee && registry.getExtensionFor(extendee, q.value.extensionNumber);
      return ext ? { files: withDependencies(ext.file) } : notFound(`extension ${q.value.extensionNumber} of "${q.value.containingType}"`);
    }
    case "allExtensionNumbersOfType": {
      const message = registry.getMessage(q.value);
      if (!message) return notFound(`type "${q.value}"`);
      const numbers: number[] = [];
      for (const type of registry) {
        if (type.kind === "extension" && type.extendee.typeName === message.typeName) numbers.push(type.number);
      }
      return { extensionNumbers: { type: message.typeName, numbers } };
    }
    default:
      return { error: { code: Code.InvalidArgument, message: "empty reflection request" } };
  }
}

/** A symbol is a type, a service, or a method or field inside one. */
function fileOfSymbol(registry: FileRegistry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct) return direct.file;
  const parent = symbol.slice(0, symbol.lastIndexOf("."));
  const container = parent ? registry.get(parent) : undefined;
  return container?.file;
}

/** The file first, then every file it imports, transitively: a client may know none of them. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) visit(dep);
  };
  visit(file);
  return out;
}

function notFound(what: string): Answer {
  return { error: { code: Code.NotFound, message: `${what} is not known to this server` } };
}
